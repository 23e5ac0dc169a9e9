"""tools/train.py, tools/test.py and tools/dist_*.sh on tiny synthetic COCO /
ADE20K data, on the CPU: train, save, test (box AP / mask AP / mIoU), resume,
and a two-process run over gloo."""
import os
import pickle
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from litv2.testing.reference import build_reference_backbone, randomize_
from litv2_openmmlab.engine.optim import (
    CPUAutocastOptimWrapper,
    cpu_bf16_support,
)
from litv2_openmmlab.engine.runner import adapt_to_device, detect_task
from tests.tiny_data import (
    CONFIGS,
    REPO,
    TINY_BACKBONE,
    make_ade,
    make_coco,
    tiny_det_config,
    tiny_seg_config,
)
from tools import test as test_tool
from tools import train as train_tool

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(),
                            reason='checks the run-time changes for no GPU')


@pytest.fixture(scope='module')
def tools():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: avoid thread synchronisation
    yield train_tool, test_tool
    torch.set_num_threads(threads)


def imagenet_checkpoint(path):
    """The tiny backbone's weights in the layout of the released ImageNet
    checkpoints (``{'model': ...}`` with the classifier's norm and head)."""
    kwargs = {k: TINY_BACKBONE[k] for k in ('embed_dim', 'depths',
                                            'num_heads')}
    state = randomize_(build_reference_backbone(**kwargs)).state_dict()
    state = {k: v for k, v in state.items() if not k.startswith('norm')}
    state.update({'norm.weight': torch.ones(128),
                  'norm.bias': torch.zeros(128),
                  'head.weight': torch.zeros(1000, 128),
                  'head.bias': torch.zeros(1000)})
    torch.save({'model': state}, path)
    return path


def logs(work_dir):
    return '\n'.join(p.read_text() for p in work_dir.rglob('*.log'))


# ---------------------------------------------------------------- task ----
@pytest.mark.parametrize('name,task', [
    ('retinanet_litv2_s_w2', 'mmdet'),
    ('mask_rcnn_litv2_b_w4', 'mmdet'),
    ('semantic_fpn_litv2_m_ade20k', 'mmseg'),
])
def test_task_is_read_from_the_config(name, task):
    assert detect_task(Config.fromfile(str(CONFIGS / f'{name}.py'))) == task


def test_task_from_custom_imports_and_unknown_task():
    cfg = Config(dict(custom_imports=dict(imports=['mmseg_litv2'])))
    assert detect_task(cfg) == 'mmseg'
    with pytest.raises(ValueError, match='odd.py.*neither'):
        detect_task(Config(dict(default_scope='mmpretrain')), 'odd.py')


def test_deterministic_cuda_run_gets_a_fixed_cublas_workspace(monkeypatch):
    """randomness.deterministic with a GPU: PyTorch refuses cuBLAS matmuls
    under deterministic algorithms unless CUBLAS_WORKSPACE_CONFIG is set,
    so adapt_to_device sets it (a value the user set is kept), and
    changes nothing else of the config."""
    from litv2_openmmlab.engine.runner import device_adaptation
    logged = []  # (mmengine's logger would look for the pretended GPU)
    monkeypatch.setattr(device_adaptation, 'info_rank0', logged.append)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.delenv('CUBLAS_WORKSPACE_CONFIG', raising=False)
    cfg = Config.fromfile(str(CONFIGS / 'retinanet_litv2_s_w2.py'))
    before = cfg.to_dict()
    adapt_to_device(cfg, 'pytorch')
    assert 'CUBLAS_WORKSPACE_CONFIG' not in os.environ  # not asked for
    cfg.randomness = dict(seed=0, deterministic=True)
    adapt_to_device(cfg, 'pytorch')
    assert os.environ['CUBLAS_WORKSPACE_CONFIG'] == ':4096:8'
    assert len(logged) == 1 and 'CUBLAS_WORKSPACE_CONFIG' in logged[0]
    assert cfg.optim_wrapper == before['optim_wrapper']  # AMP stays
    monkeypatch.setenv('CUBLAS_WORKSPACE_CONFIG', ':16:8')
    adapt_to_device(cfg, 'none')
    assert os.environ['CUBLAS_WORKSPACE_CONFIG'] == ':16:8'


@NO_GPU
def test_gpu_settings_are_adapted_without_a_gpu():
    # AMP: bf16 autocast on a CPU with bf16 arithmetic, fp32 on others
    cfg = Config.fromfile(str(CONFIGS / 'retinanet_litv2_s_w2.py'))
    adapt_to_device(cfg, 'none')
    assert cfg.optim_wrapper.type == ('CPUAutocastOptimWrapper'
                                      if cpu_bf16_support()[0]
                                      else 'OptimWrapper')
    assert 'loss_scale' not in cfg.optim_wrapper
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'  # one process: untouched
    os.environ['LITV2_ASSUME_NO_CPU_BF16'] = '1'
    try:
        cfg = Config.fromfile(str(CONFIGS / 'retinanet_litv2_s_w2.py'))
        adapt_to_device(cfg, 'none')
    finally:
        del os.environ['LITV2_ASSUME_NO_CPU_BF16']
    assert cfg.optim_wrapper.type == 'OptimWrapper'

    cfg = Config.fromfile(str(CONFIGS / 'semantic_fpn_litv2_s_ade20k.py'))
    adapt_to_device(cfg, 'pytorch')
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.model.decode_head.norm_cfg.type == 'BN'
    assert 'SyncBN' not in str(cfg.model)


def test_bad_arguments_are_named(tools, tmp_path):
    train, test = tools
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        test.main([str(CONFIGS / 'retinanet_litv2_s_w2.py'),
                   str(tmp_path / 'missing.pth')])
    ckpt = tmp_path / 'x.pth'
    ckpt.write_bytes(b'')
    with pytest.raises(ValueError, match='--out'):
        test.main([str(CONFIGS / 'retinanet_litv2_s_w2.py'), str(ckpt),
                   '--out', str(tmp_path / 'results.json'),
                   '--work-dir', str(tmp_path)])


# ------------------------------------------------------- single process ----
@pytest.mark.slow
def test_detection_train_test_resume(tools, tmp_path):
    train, test = tools
    pretrained = imagenet_checkpoint(tmp_path / 'litv2_tiny.pth')
    cfg = tiny_det_config(
        tmp_path / 'retinanet.py', 'retinanet_litv2_s_w2',
        make_coco(tmp_path / 'coco'),
        init_cfg=dict(type='Pretrained', checkpoint='set-on-command-line'),
        extra="model.update(test_cfg=dict(score_thr=0.0))")
    work_dir = tmp_path / 'work'
    override = ['--cfg-options',
                f'model.backbone.init_cfg.checkpoint={pretrained}']
    train.main([str(cfg), '--work-dir', str(work_dir)] + override)
    assert (work_dir / 'epoch_1.pth').is_file()
    assert f'LITv2: loaded {pretrained}' in logs(work_dir)

    out = tmp_path / 'results.pkl'
    metrics = test.main([str(cfg), str(work_dir / 'epoch_1.pth'), '--out',
                         str(out), '--work-dir', str(tmp_path / 'test')])
    assert 0.0 <= metrics['coco/bbox_mAP'] <= 1.0
    with open(out, 'rb') as f:
        assert len(pickle.load(f)) == 2  # one entry per image

    runner = train.main([str(cfg), '--work-dir', str(work_dir), '--resume',
                         '--cfg-options', 'train_cfg.max_epochs=2']
                        + override[1:])
    assert runner.epoch == 2 and (work_dir / 'epoch_2.pth').is_file()
    assert 'resumed epoch: 1' in logs(work_dir)


@pytest.mark.slow
def test_mask_rcnn_train_and_test(tools, tmp_path):
    train, test = tools
    cfg = tiny_det_config(tmp_path / 'mask_rcnn.py', 'mask_rcnn_litv2_s_w4',
                          make_coco(tmp_path / 'coco'),
                          extra="model.update(test_cfg=dict(rcnn=dict("
                          "score_thr=0.0, max_per_img=10)))")
    train.main([str(cfg), '--work-dir', str(tmp_path / 'work')])
    metrics = test.main([str(cfg), str(tmp_path / 'work' / 'epoch_1.pth'),
                         '--work-dir', str(tmp_path / 'test')])
    assert {'coco/bbox_mAP', 'coco/segm_mAP'} <= set(metrics)


@NO_GPU
def test_amp_training_on_cpu(tools, tmp_path, monkeypatch):
    """--amp without a GPU: bf16 autocast where the CPU computes bf16
    (the forward and loss run under it), a one-line refusal where not."""
    train, _ = tools
    cfg = tiny_seg_config(tmp_path / 'fpn.py', 'semantic_fpn_litv2_s_ade20k',
                          make_ade(tmp_path / 'ade'))
    if cpu_bf16_support()[0]:
        runner = train.main([str(cfg), '--amp', '--work-dir',
                             str(tmp_path / 'work')])
        wrapper = runner.optim_wrapper
        assert isinstance(wrapper, CPUAutocastOptimWrapper)
        assert (tmp_path / 'work' / 'iter_2.pth').is_file()
        # inside the step's context the network runs in bf16, the
        # post-processing in fp32
        model = runner.model
        seen = []
        hook = model.backbone.patch_embed.register_forward_hook(
            lambda module, args, out: seen.append(out.dtype))
        images = torch.randn(1, 3, 64, 64)
        with torch.no_grad(), wrapper.optim_context(model):
            feats = model.extract_feat(images)
            logits = model.decode_head.forward(feats)
            assert logits.dtype == torch.bfloat16
            assert model.decode_head.predict_by_feat(
                logits, [dict(img_shape=(64, 64))]).dtype == torch.float32
        hook.remove()
        assert seen == [torch.bfloat16]
        with torch.no_grad():  # and nothing is left patched afterwards
            model.extract_feat(images)
        assert not torch.is_autocast_enabled('cpu')
    monkeypatch.setenv('LITV2_ASSUME_NO_CPU_BF16', '1')
    run = subprocess.run(
        [sys.executable, 'tools/train.py', str(cfg), '--amp', '--work-dir',
         str(tmp_path / 'refused')], cwd=REPO, capture_output=True,
        text=True, timeout=300)
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1].startswith(
        'CPUBF16Error: --amp: bf16 on this CPU would be emulated')
    assert 'Traceback' not in run.stderr


def test_segmentation_train_test(tools, tmp_path):
    train, test = tools
    cfg = tiny_seg_config(tmp_path / 'fpn.py', 'semantic_fpn_litv2_s_ade20k',
                          make_ade(tmp_path / 'ade'))
    work_dir = tmp_path / 'work'
    train.main([str(cfg), '--work-dir', str(work_dir)])
    assert (work_dir / 'iter_2.pth').is_file()
    out = tmp_path / 'pred'
    metrics = test.main([str(cfg), str(work_dir / 'iter_2.pth'), '--out',
                         str(out), '--work-dir', str(tmp_path / 'test')])
    assert 0.0 <= metrics['mIoU'] <= 100.0
    assert len(list(out.glob('*.png'))) == 2


# ---------------------------------------------------- several processes ----
def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.heavy
@NO_GPU
def test_dist_train_and_test_two_processes_without_gpu(tmp_path):
    cfg = tiny_seg_config(tmp_path / 'fpn.py', 'semantic_fpn_litv2_s_ade20k',
                          make_ade(tmp_path / 'ade', num_images=4))
    env = dict(os.environ, PORT=str(_free_port()),
               TORCHRUN=os.path.join(os.path.dirname(sys.executable),
                                     'torchrun'),
               PYTHONPATH=str(REPO))
    work_dir = tmp_path / 'work'
    run = subprocess.run(
        ['bash', str(REPO / 'tools' / 'dist_train.sh'), str(cfg), '2',
         '--work-dir', str(work_dir)], env=env, capture_output=True,
        text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    output = run.stdout + run.stderr
    assert "replaced by 'gloo'" in output
    assert 'SyncBN replaced by BN' in output
    log = logs(work_dir)
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    assert (work_dir / 'iter_2.pth').is_file()

    env['PORT'] = str(_free_port())
    run = subprocess.run(
        ['bash', str(REPO / 'tools' / 'dist_test.sh'), str(cfg),
         str(work_dir / 'iter_2.pth'), '2', '--work-dir',
         str(tmp_path / 'test')], env=env, capture_output=True, text=True,
        timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert 'mIoU' in logs(tmp_path / 'test')
