"""tools/fps.py on the quickstart configs and a tiny test set, on the CPU
(few, small images: behaviour and output, not speed)."""
import json
import statistics

import pytest
import torch
from mmengine.config import Config

from litv2_openmmlab.apis import build_inference_model, load_config
from tests.tiny_data import CONFIGS, make_ade, tiny_seg_config
from tools import fps as fps_tool

RETINANET_TOY = str(CONFIGS / 'quickstart/retinanet_litv2_toy.py')
SEG_TOY = str(CONFIGS / 'quickstart/semantic_fpn_litv2_toy.py')
# the CPU path on a GPU machine too (fps.py's default device is cuda there)
FEW = ['--num-images', '2', '--warmup', '1', '--device', 'cpu']


@pytest.fixture(scope='module')
def fps():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: avoid thread synchronisation
    yield fps_tool
    torch.set_num_threads(threads)


def test_fps_on_random_images_with_a_checkpoint(fps, tmp_path, capsys):
    cfg, task = load_config(RETINANET_TOY)
    ckpt = tmp_path / 'toy.pth'
    torch.save({'state_dict': build_inference_model(cfg, task).state_dict()},
               ckpt)
    out = tmp_path / 'fps.json'
    result = fps.main([
        RETINANET_TOY, str(ckpt), '--shape', '48', '64', '--repeat', '2',
        '--json', str(out)] + FEW)
    printed = capsys.readouterr().out
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result['source'] == 'random images of 48x64'
    assert result['num_images'] == 2 and result['warmup'] == 1
    assert len(result['fps_per_repeat']) == 2
    assert result['fps'] == pytest.approx(
        statistics.mean(result['fps_per_repeat']))
    assert result['fps'] > 0 and result['fps_std'] >= 0
    assert result['device'] == 'cpu' and result['threads'] == 1
    assert result['peak_memory_kind'] == (
        'peak resident set size of the process')
    assert result['peak_memory_mib'] > 0
    lines = printed.strip().splitlines()
    assert lines[-1].startswith(f"FPS: {result['fps']:.2f} +- ")
    assert 'cpu' in printed and '1 threads' in printed
    assert 'peak memory: ' in printed


def test_fps_refuses_a_checkpoint_of_another_model(fps, tmp_path):
    ckpt = tmp_path / 'other.pth'
    torch.save({'state_dict': {'backbone.nothing': torch.zeros(1)}}, ckpt)
    with pytest.raises(RuntimeError, match='backbone.nothing'):
        fps.main([RETINANET_TOY, str(ckpt), '--shape', '32'] + FEW)


def test_fps_reads_the_test_set(fps, tmp_path):
    cfg = tiny_seg_config(tmp_path / 'fpn.py', 'semantic_fpn_litv2_s_ade20k',
                          make_ade(tmp_path / 'ade'))
    # 3 images from a test set of 2: the loader starts over
    result = fps.main([str(cfg), '--num-images', '3', '--warmup', '0',
                       '--device', 'cpu'])
    assert result['task'] == 'mmseg' and result['source'] == 'test set'
    assert result['fps'] > 0


def test_missing_test_set_means_random_images(fps):
    cfg = Config.fromfile(SEG_TOY)
    cfg.test_dataloader.dataset.data_root = '/nonexistent/litv2'
    assert fps.test_set_batches(cfg, 'mmseg') is None
    # and --shape needs no data at all
    result = fps.main([SEG_TOY, '--shape', '40'] + FEW)
    assert result['source'] == 'random images of 40x40'


@pytest.mark.parametrize('args,message', [
    (['--num-images', '0'], '--num-images'),
    (['--warmup', '-1'], '--warmup'),
    (['--repeat', '0'], '--repeat'),
    (['--shape', '1', '2', '3'], '--shape'),
    (['missing.pth'], "'missing.pth' not found"),
])
def test_fps_bad_arguments(fps, capsys, args, message):
    with pytest.raises(SystemExit):
        fps.main([RETINANET_TOY] + args)
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs no GPU')
def test_fps_cuda_and_fp16_without_a_gpu(fps, capsys):
    with pytest.raises(SystemExit):
        fps.main([RETINANET_TOY, '--device', 'cuda'])
    assert 'no CUDA device' in capsys.readouterr().err
    for amp in (['--fp16'], ['--amp', 'fp16']):
        with pytest.raises(SystemExit):
            fps.main([RETINANET_TOY] + amp)
        assert '--amp fp16 needs --device cuda' in capsys.readouterr().err


def test_fps_bf16_on_cpu(fps, capsys, monkeypatch):
    """bf16 autocast runs where the CPU has bf16 arithmetic and is refused
    in one line where it has not (emulated bf16 is no speed path)."""
    from litv2_openmmlab.engine.optim import cpu_bf16_support
    if cpu_bf16_support()[0]:
        result = fps.main([RETINANET_TOY, '--shape', '48', '64', '--amp',
                           'bf16', '--device', 'cpu'] + FEW)
        assert result['amp'] == 'bf16' and result['fps'] > 0
        assert 'bf16 autocast' in capsys.readouterr().out
    monkeypatch.setenv('LITV2_ASSUME_NO_CPU_BF16', '1')
    with pytest.raises(SystemExit):
        fps.main([RETINANET_TOY, '--amp', 'bf16', '--device', 'cpu'])
    err = capsys.readouterr().err
    assert '--amp bf16: bf16 on this CPU would be emulated' in err


class FakeClock:
    """``time.perf_counter`` that advances by a known amount per call of
    the model's ``test_step`` (and by nothing elsewhere)."""

    def __init__(self, seconds_per_step):
        self.now, self.step = 0.0, seconds_per_step

    def __call__(self):
        return self.now

    def advance(self):
        self.now += self.step


def test_fps_is_timed_images_over_timed_seconds(fps, monkeypatch):
    """Against a known clock: each test_step takes 0.25 s, 3 warm-up
    images are not timed, so 5 timed images give 4.0 FPS exactly (a count
    of num_images + 1, or timing the warm-up, gives another figure)."""
    clock = FakeClock(0.25)
    monkeypatch.setattr(fps.time, 'perf_counter', clock)
    real_build = fps.build_inference_model
    steps = []

    def build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        real_step = model.test_step

        def test_step(batch):
            steps.append(batch)
            clock.advance()
            return real_step(batch)
        model.test_step = test_step
        return model

    monkeypatch.setattr(fps, 'build_inference_model', build)
    result = fps.main([RETINANET_TOY, '--shape', '32', '--num-images', '5',
                       '--warmup', '3', '--repeat', '2', '--device', 'cpu'])
    assert len(steps) == 2 * (3 + 5)
    assert result['fps_per_repeat'] == [4.0, 4.0]
    assert result['fps'] == 4.0 and result['ms_per_image'] == 250.0


def test_cudnn_autotuning_follows_the_config(fps, monkeypatch):
    """cuDNN's benchmark mode is the config's env_cfg.cudnn_benchmark,
    not what the process had: left on by an earlier benchmark, its trial
    workspaces once took the peak memory of a RetinaNet to 93 GB."""
    monkeypatch.setattr(torch.backends.cudnn, 'benchmark', True)
    fps.main([RETINANET_TOY, '--shape', '32'] + FEW)
    assert torch.backends.cudnn.benchmark is False
    fps.main([RETINANET_TOY, '--shape', '32', '--cfg-options',
              'env_cfg.cudnn_benchmark=True'] + FEW)
    assert torch.backends.cudnn.benchmark is True


def test_compile_backbone_and_neck(fps, monkeypatch):
    """--compile wraps the backbone and the neck with torch.compile after
    the checkpoint is loaded (dynamo's tracing only here: inductor's C++
    build would take minutes on a small CPU) and says so."""
    import functools
    compiled = []
    real_compile = torch.compile

    def compile_eager(module, mode=None):
        compiled.append((type(module).__name__, mode))
        return functools.partial(real_compile, backend='eager')(module)

    monkeypatch.setattr(torch, 'compile', compile_eager)
    result = fps.main([RETINANET_TOY, '--shape', '32', '--compile',
                       'reduce-overhead'] + FEW)
    assert compiled == [('LITv2', 'reduce-overhead'),
                        ('FPN', 'reduce-overhead')]
    assert result['compile'] == 'reduce-overhead' and result['fps'] > 0
