"""What the benchmarks report about the machine they ran on: the CPU's name,
and the CPU time the hypervisor stole during a run (a large share means
noisy figures)."""
import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
