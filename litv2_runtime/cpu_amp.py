"""Mixed precision without a GPU: bf16 autocast on CPUs that compute bf16
natively (AVX512-BF16, AMX, Arm's BF16 extension).

mmengine's ``AmpOptimWrapper`` refuses to start without a GPU, NPU or MLU;
``CPUAutocastOptimWrapper`` is the same training step under
``torch.autocast('cpu', dtype=torch.bfloat16)``, post-processing in fp32
(``autocast_parts.py``). bf16 has fp32's exponent
range, so no loss scaling is needed (fp16 on a CPU would need it and is slower
than fp32 there, so it is not offered). ``tools/train.py --amp`` and configs
with ``AmpOptimWrapper`` use it on machines without CUDA
(``litv2_runtime.launch.adapt_to_device``).
"""
import os
import platform
from contextlib import contextmanager
from typing import Tuple

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from .autocast_parts import autocast_model

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


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward and loss run under bf16 autocast on
    the CPU (no loss scaler: bf16 cannot overflow where fp32 does not).

    Args:
        dtype: only ``'bfloat16'`` (or ``torch.bfloat16``).
        **kwargs: those of ``OptimWrapper``.
    """

    def __init__(self, *args, dtype='bfloat16', **kwargs):
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(
                f"CPUAutocastOptimWrapper: dtype must be 'bfloat16', got "
                f'{dtype!r} (fp16 on a CPU needs loss scaling and is slower '
                'than fp32)')
        require_cpu_bf16('CPUAutocastOptimWrapper')
        super().__init__(*args, **kwargs)
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        # the step under autocast, post-processing (the proposals' NMS,
        # RoIAlign) in fp32
        network = model.module if hasattr(model, 'module') else model
        with super().optim_context(model), \
                autocast_model(network, 'cpu', self.cast_dtype):
            yield


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
