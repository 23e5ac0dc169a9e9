"""Whole-model checkpoints are loaded strictly by every tool
(litv2_openmmlab/checkpoint/strict_load.py): a missing, unexpected or
differently shaped key stops tools/test.py, tools/fps.py and tools/train.py's
load_from with one line naming the file, the first keys and their count,
before anything is evaluated; a partial load needs --allow-missing."""
import subprocess
import sys

import pytest
import torch
from torch import nn

from litv2_openmmlab.checkpoint import (
    CheckpointMismatchError,
    load_checkpoint_strictly,
    load_state_dict_strictly,
)
from tests.tiny_data import REPO, make_coco, tiny_det_config
from tools import fps as fps_tool
from tools import train as train_tool


# ---------------------------------------------------------------- unit ----
class Net(nn.Module):
    def __init__(self, width=4, extra=False):
        super().__init__()
        self.body = nn.Linear(3, width)
        self.head = nn.Linear(width, 2)
        if extra:
            self.more = nn.Linear(2, 2)


def test_every_kind_of_mismatch_is_named_with_its_count(tmp_path):
    path = tmp_path / 'net.pth'
    torch.save({'state_dict': Net().state_dict()}, path)

    model = Net(extra=True)  # two keys the file lacks
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as err:
        load_checkpoint_strictly(model, str(path))
    message = str(err.value)
    assert str(path) in message and '\n' not in message
    assert '2 missing from the file (more.weight, more.bias)' in message
    assert err.value.missing == ['more.weight', 'more.bias']
    for key, value in model.state_dict().items():  # nothing was copied
        assert torch.equal(value, before[key]), key

    torch.save({'state_dict': Net(extra=True).state_dict()}, path)
    with pytest.raises(CheckpointMismatchError,
                       match='2 not in the model'):
        load_checkpoint_strictly(Net(), str(path))

    torch.save(Net(width=5).state_dict(), path)  # a bare state dict
    with pytest.raises(CheckpointMismatchError,
                       match=r'3 of another shape \(body.weight: file '
                       r'\(5, 3\) vs model \(4, 3\)'):
        load_checkpoint_strictly(Net(), str(path))


def test_a_matching_file_loads_and_module_prefix_is_stripped():
    source = Net()
    state = {f'module.{k}': v for k, v in source.state_dict().items()}
    model = Net()
    load_state_dict_strictly(model, state)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


def test_allow_missing_is_a_deliberate_partial_load():
    source = Net(width=4)
    state = dict(source.state_dict())
    del state['head.bias']
    state['old.weight'] = torch.zeros(1)
    model = Net(width=4)
    head_bias = model.head.bias.detach().clone()
    with pytest.raises(CheckpointMismatchError):
        load_state_dict_strictly(model, state)
    load_state_dict_strictly(model, state, allow_missing=['head.*', 'old.*'])
    assert torch.equal(model.body.weight, source.body.weight)
    assert torch.equal(model.head.weight, source.head.weight)
    assert torch.equal(model.head.bias, head_bias)  # kept its initial value

    # another head: a shape that differs is allowed by the pattern too
    other = dict(Net(width=4).state_dict())
    other['head.weight'] = torch.zeros(7, 4)
    other['head.bias'] = torch.zeros(7)
    load_state_dict_strictly(model, other, allow_missing=['head.*'])
    assert torch.equal(model.body.weight, other['body.weight'])


# --------------------------------------------------------------- tools ----
# The tiny RetinaNet of tests/tiny_data.py at depths [1, 1, 2, 1]; its
# checkpoint is what the model built with --cfg-options holds.
DEPTHS = ['--cfg-options', 'model.backbone.depths=[1,1,2,1]']
DEEPER = ['--cfg-options', 'model.backbone.depths=[1,1,3,1]']


@pytest.fixture(scope='module')
def detector(tmp_path_factory):
    """``(config, checkpoint)``: a checkpoint of the model that the config
    builds at DEPTHS, in the layout the runner writes."""
    from mmengine.config import Config

    from litv2_openmmlab.apis import build_inference_model
    from litv2_openmmlab.engine.runner import detect_task, setup_task
    root = tmp_path_factory.mktemp('strict')
    cfg_path = tiny_det_config(root / 'retinanet.py', 'retinanet_litv2_s_w2',
                               make_coco(root / 'coco'))
    cfg = Config.fromfile(str(cfg_path))
    cfg.merge_from_dict({'model.backbone.depths': [1, 1, 2, 1]})
    task = detect_task(cfg)
    setup_task(task)
    model = build_inference_model(cfg, task)
    ckpt = root / 'depths_1121.pth'
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, ckpt)
    return cfg_path, ckpt


def _run(tool, *args):
    return subprocess.run(
        [sys.executable, str(REPO / 'tools' / f'{tool}.py'), *map(str, args)],
        capture_output=True, text=True, timeout=300, cwd=REPO)


@pytest.mark.slow
def test_test_py_refuses_a_checkpoint_of_another_depth(detector, tmp_path):
    cfg, ckpt = detector
    run = _run('test', cfg, ckpt, '--work-dir', tmp_path, *DEEPER)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith('CheckpointMismatchError: checkpoint ')
    assert str(ckpt) in last
    # the 14 tensors of the third block of stage 3 (norms, HiLo, ConvFFN)
    assert 'missing from the file (backbone.layers.2.blocks.2.' in last
    assert 'Traceback' not in run.stderr
    assert 'bbox_mAP' not in run.stdout + run.stderr  # nothing evaluated


def test_fps_and_train_load_from_refuse_it_too(detector, tmp_path):
    cfg, ckpt = detector
    fps = fps_tool
    with pytest.raises(CheckpointMismatchError,
                       match=r'\d+ missing from the file \(backbone.layers'
                       r'.2.blocks.2.'):
        fps.main([str(cfg), str(ckpt), '--shape', '64', '--num-images', '1',
                  '--warmup', '0', *DEEPER])
    # the checkpoint's own depth loads
    result = fps.main([str(cfg), str(ckpt), '--shape', '64', '--num-images',
                       '1', '--warmup', '0', *DEPTHS])
    assert result['fps'] > 0

    train = train_tool
    with pytest.raises(CheckpointMismatchError, match=str(ckpt)):
        train.main([str(cfg), '--work-dir', str(tmp_path / 'work'),
                    '--cfg-options', f'load_from={ckpt}',
                    'model.backbone.depths=[1,1,3,1]'])
    assert not list((tmp_path / 'work').rglob('*.pth'))  # never trained


def test_backbone_only_file_loads_with_allow_missing(detector, tmp_path):
    """Fine-tuning from a backbone-only file: refused by default, loaded with
    the neck and head named as allowed to be missing."""
    cfg, ckpt = detector
    state = torch.load(ckpt, weights_only=True)['state_dict']
    backbone = tmp_path / 'backbone_only.pth'
    torch.save({'state_dict': {k: v for k, v in state.items()
                               if k.startswith('backbone.')}}, backbone)
    train = train_tool
    args = [str(cfg), '--work-dir', str(tmp_path / 'work'), '--cfg-options',
            f'load_from={backbone}', 'model.backbone.depths=[1,1,2,1]']
    with pytest.raises(CheckpointMismatchError,
                       match=r'missing from the file \((neck|bbox_head)\.'):
        train.main(args)
    runner = train.main(args + ['--allow-missing', 'neck.*', 'bbox_head.*'])
    assert runner.epoch == 1
    log = '\n'.join(p.read_text() for p in (tmp_path / 'work').rglob('*.log'))
    assert 'loaded partially' in log and "['neck.*', 'bbox_head.*']" in log
