"""What the benchmarks report about the machine they ran on: the CPU's name
and vector instructions, and the CPU time the hypervisor stole during a run
(a large share means noisy figures).

Machines of one name differ: an AMD EPYC host with AVX512-BF16 and one with
only AVX2 ran the same fp32 classifier at 18.5 and 13.9 img/s, and bf16
autocast 34.5 and 1.2 img/s (oneDNN emulates bf16 without the
instructions), so every figure names the instructions too."""
import platform
from pathlib import Path

import torch


def cpu_name() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> set:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('flags'):
                return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16() -> bool:
    """Whether the CPU computes bf16 in hardware (AMX or AVX512-BF16)."""
    return bool({'amx_bf16', 'avx512_bf16'} & _cpu_flags())


def cpu_vector_isa() -> str:
    """The widest matmul instructions: AMX, AVX512-BF16, else what PyTorch
    dispatches its CPU kernels to (AVX512, AVX2, ...)."""
    flags = _cpu_flags()
    if 'amx_bf16' in flags:
        return 'AMX'
    if 'avx512_bf16' in flags:
        return 'AVX512-BF16'
    return torch.backends.cpu.get_cpu_capability()


def cpu_description() -> str:
    """The CPU's name and vector instructions, e.g. 'AMD EPYC (AVX2)'."""
    return f'{cpu_name()} ({cpu_vector_isa()})'


def cpu_ticks():
    """(all, stolen) CPU ticks since boot, or None where /proc/stat is not."""
    try:
        with open('/proc/stat') as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    return sum(fields[:8]), fields[7]


def steal_share(start, end) -> float:
    """Share of the CPU time between two ``cpu_ticks()`` that was stolen."""
    if start is None or end is None or end[0] == start[0]:
        return float('nan')
    return (end[1] - start[1]) / (end[0] - start[0])
