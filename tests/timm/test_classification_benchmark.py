"""tools/classification_benchmark.py: runs, reports, measures something that
is at least what must be in memory. Speed itself is not asserted."""
import pytest
import torch

from tools import classification_benchmark as bench


def test_throughput_table(tmp_path):
    threads = torch.get_num_threads()
    try:
        out = tmp_path / 'cls.md'
        results = bench.main([
            '--models', 'litv2_s', '--batch-size', '1', '--runs', '1',
            '--warmup', '0', '--threads', '1', '--device', 'cpu',
            '--skip', 'test-mem', 'train-mem', '--markdown', str(out)])
    finally:
        torch.set_num_threads(threads)
    assert float(results['litv2_s']['throughput']) > 0
    table = out.read_text()
    assert 'CPU, 1 threads: batch 1, 1 timed runs after 0 warm-up' in table
    assert '| litv2_s | 224 | 27.84 | 3.74 |' in table  # paper: 28 M, 3.7 G
    assert '| - | - |' in table  # skipped measures are not invented


def test_cpu_train_memory_holds_weights_and_gradients():
    """Peak RSS growth of a forward/backward (fresh process) is at least the
    weights plus their gradients (2 x 27.8 M fp32 values)."""
    peak = bench.peak_memory('litv2_s', 'cpu', train=True, batch_size=1,
                             amp=None, threads=1)
    assert peak > 2 * 27.8e6 * 4


def test_bad_arguments():
    for argv in (['--batch-size', '0'], ['--runs', '0'], ['--warmup', '-1'],
                 ['--models', 'litv2_x'], ['--skip', 'speed']):
        with pytest.raises(SystemExit):
            bench.parse_args(argv)
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            bench.parse_args(['--device', 'cuda'])
        with pytest.raises(SystemExit):
            bench.parse_args(['--device', 'cpu', '--amp', 'fp16'])


def test_amp_choice_follows_the_device(monkeypatch):
    assert bench.parse_args(['--device', 'cpu']).amp is None
    monkeypatch.setenv('LITV2_ASSUME_NO_CPU_BF16', '1')
    with pytest.raises(SystemExit):  # emulated bf16 is no speed path
        bench.parse_args(['--device', 'cpu', '--amp'])
    monkeypatch.delenv('LITV2_ASSUME_NO_CPU_BF16')
    from litv2_openmmlab.engine.optim import cpu_bf16_support
    if cpu_bf16_support()[0]:
        assert bench.parse_args(['--device', 'cpu', '--amp']).amp == 'bf16'
