"""A non-finite loss stops training at that iteration, naming it and the loss
term, before a checkpoint of NaN weights is written (tools/train.py adds the
FiniteLossHook by default; --no-finite-loss-check turns it off)."""

import pytest
import torch
from mmengine.config import Config

from litv2_openmmlab.checkpoint import load_from_file_weights_only
from litv2_openmmlab.engine.hooks import NonFiniteLossError, non_finite_losses
from litv2_openmmlab.engine.runner import add_reliability_hooks
from tests.tiny_data import make_ade, tiny_seg_config
from tools import train

NAN_AT_3 = """
custom_imports = dict(imports=['mmseg_litv2', 'tests.fault_hooks'],
                      allow_failed_imports=False)
train_cfg = dict(max_iters=4, val_interval=4)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
custom_hooks = [dict(type='NanWeightsAtIterHook', at=3)]
"""


@pytest.fixture(scope='module')
def train_tool():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield train
    torch.set_num_threads(threads)


def test_non_finite_terms_are_found():
    outputs = {'loss': torch.tensor(float('nan')),
               'decode.loss_ce': torch.tensor(float('inf')),
               'decode.acc_seg': torch.tensor(float('nan')),  # not a loss
               'loss_bbox': torch.tensor(0.5)}
    assert set(non_finite_losses(outputs)) == {'loss', 'decode.loss_ce'}
    assert non_finite_losses({'loss': torch.tensor(1.0)}) == {}


def test_nan_loss_stops_segmentation_training(train_tool, tmp_path):
    cfg = tiny_seg_config(tmp_path / 'fpn.py', 'semantic_fpn_litv2_s_ade20k',
                          make_ade(tmp_path / 'ade'), iters=4,
                          extra=NAN_AT_3)
    work = tmp_path / 'work'
    with pytest.raises(NonFiniteLossError,
                       match=r'iteration 3: .*decode\.loss_ce=nan') as err:
        train_tool.main([str(cfg), '--work-dir', str(work)])
    assert str(work / 'iter_2.pth') in str(err.value)
    assert not (work / 'iter_4.pth').exists()
    state = load_from_file_weights_only(work / 'iter_2.pth')['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values()
               if v.is_floating_point())
    assert 'non-finite loss at iteration 3' in '\n'.join(
        p.read_text() for p in work.rglob('*.log'))


def test_check_is_on_by_default_and_can_be_turned_off():
    # (a run going on with NaN weights is not run here: torchvision's
    # deform_conv2d, used by DTM, crashes on NaN offsets)
    for flag, hooks in ((True, {'RandomStateHook', 'FiniteLossHook'}),
                        (False, {'RandomStateHook'})):
        cfg = Config(dict(default_hooks=dict(checkpoint=dict(
            type='CheckpointHook', interval=1)), custom_hooks=[]))
        add_reliability_hooks(cfg, finite_loss_check=flag)
        assert {h['type'] for h in cfg.custom_hooks} == hooks
        assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
