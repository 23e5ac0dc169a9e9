"""What the benchmarks say about the CPU: its vector instructions in every
figure's machine line, and bf16 left out where the CPU only emulates it."""
import pytest

from benchmarks import bench_peers, machine


@pytest.mark.parametrize('flags, isa', [
    ({'avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'}, 'AMX'),
    ({'avx2', 'avx512f', 'avx512_bf16'}, 'AVX512-BF16'),
])
def test_bf16_instructions_are_named(monkeypatch, flags, isa):
    monkeypatch.setattr(machine, '_cpu_flags', lambda: flags)
    assert machine.cpu_vector_isa() == isa
    assert machine.native_bf16()
    assert machine.cpu_description().endswith(f'({isa})')


def test_without_bf16_instructions_torch_capability_is_named(monkeypatch):
    monkeypatch.setattr(machine, '_cpu_flags', lambda: {'avx', 'avx2'})
    monkeypatch.setattr(machine.torch.backends.cpu, 'get_cpu_capability',
                        lambda: 'AVX2')
    assert machine.cpu_vector_isa() == 'AVX2'
    assert not machine.native_bf16()


class _Report:
    def __init__(self):
        self.tables = []

    def add(self, title, text, rows):
        self.tables.append((title, text))


@pytest.mark.parametrize('native, forced, measured', [
    (False, False, ['fp32', 'compile']),
    (False, True, ['fp32', 'bf16', 'compile']),
    (True, False, ['fp32', 'bf16', 'compile']),
])
def test_emulated_bf16_is_left_out_and_said(monkeypatch, native, forced,
                                            measured):
    monkeypatch.setattr(bench_peers, 'native_bf16', lambda: native)
    argv = ['--device', 'cpu', '--modes', 'fp32', 'bf16', 'compile']
    args = bench_peers.parse_args(argv + ['--emulated-bf16'] * forced)
    report = _Report()
    bench_peers.leave_out_emulated_bf16(args, report)
    assert args.modes == measured
    if 'bf16' in measured:
        assert report.tables == []
    else:
        [(title, text)] = report.tables
        assert title == 'bf16: not measured'
        assert 'no bf16 instructions' in text and '--emulated-bf16' in text
