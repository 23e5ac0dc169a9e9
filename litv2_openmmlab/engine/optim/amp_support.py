"""What mixed precision this machine can run: bf16 arithmetic on the CPU
(AVX512-BF16, AMX, Arm's BF16 extension), and whether an ``--amp`` option of
the tools fits the device.

On CPUs without native bf16 torch emulates it, slower than fp32, which
defeats the purpose of a speed path, so the bf16 paths refuse to start
there (:class:`CPUBF16Error`). fp16 on a CPU would need loss scaling and is
slower than fp32 there, so it is not offered.
"""
import os
import platform
from typing import Tuple

import torch

# /proc/cpuinfo flags of native bf16 arithmetic: x86 AVX512-BF16 and AMX-BF16;
# 'bf16' is Arm's (FEAT_BF16).
_BF16_FLAGS = ('avx512_bf16', 'amx_bf16', 'bf16')


def cpu_bf16_support() -> Tuple[bool, str]:
    """``(supported, what was found)``: whether this CPU has bf16 arithmetic
    (on others torch emulates it, slower than fp32, which defeats the
    purpose of a speed path). Reads the CPU flags where Linux shows them,
    otherwise asks oneDNN."""
    if os.environ.get('LITV2_ASSUME_NO_CPU_BF16'):  # tests of the refusal
        return False, 'LITV2_ASSUME_NO_CPU_BF16 is set'
    try:
        with open('/proc/cpuinfo') as f:
            flags = set()
            for line in f:
                if line.split(':')[0].strip() in ('flags', 'Features'):
                    flags.update(line.split(':', 1)[1].split())
    except OSError:
        flags = None
    if flags:
        found = [flag for flag in _BF16_FLAGS if flag in flags]
        if found:
            return True, 'CPU flags ' + ', '.join(found)
        return False, ('the CPU has none of the flags ' +
                       ', '.join(_BF16_FLAGS))
    supported = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return supported, (f'oneDNN reports bf16 {"" if supported else "un"}'
                       f'supported on this {platform.machine()} CPU')


class CPUBF16Error(RuntimeError):
    """A bf16 speed path was asked for on a CPU without bf16 arithmetic."""


def require_cpu_bf16(what: str) -> None:
    """Raise ``CPUBF16Error`` (one line, naming ``what`` asked for it) when
    this CPU has no native bf16 arithmetic."""
    supported, found = cpu_bf16_support()
    if not supported:
        raise CPUBF16Error(
            f'{what}: bf16 on this CPU would be emulated, slower than fp32 '
            f'({found}); run in fp32 (without the option) or on a GPU')


def amp_option_error(amp, device: str):
    """What is wrong with ``--amp {bf16,fp16}`` on ``device`` (one line), or
    None: fp16 only on a GPU (CPUs have no fp16 arithmetic to speak of),
    bf16 on a GPU that has it or a CPU with bf16 arithmetic."""
    if amp == 'fp16' and device != 'cuda':
        return '--amp fp16 needs --device cuda (on a CPU: --amp bf16)'
    if amp == 'bf16' and device == 'cpu':
        try:
            require_cpu_bf16('--amp bf16')
        except CPUBF16Error as err:
            return str(err)
    if (amp == 'bf16' and device == 'cuda'
            and not torch.cuda.is_bf16_supported()):
        return '--amp bf16: this GPU has no bf16 support; use --amp fp16'
    return None
