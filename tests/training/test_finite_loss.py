"""A non-finite loss stops training at that iteration, naming it and the loss
term, before a checkpoint of NaN weights is written (tools/train.py adds the
FiniteLossHook by default; --no-finite-loss-check turns it off)."""

import pytest
import torch
from mmengine.config import Config

from litv2_openmmlab.checkpoint import load_from_file_weights_only
from litv2_openmmlab.engine.hooks import (
    FiniteLossHook,
    NonFiniteLossError,
    non_finite_losses,
)
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
    always = {'StrictLoadHook', 'RandomStateHook', 'ResumeCheckHook',
              'FiniteWeightsHook'}
    for flag, hooks in ((True, always | {'FiniteLossHook'}),
                        (False, always)):
        cfg = Config(dict(default_hooks=dict(checkpoint=dict(
            type='CheckpointHook', interval=1)), custom_hooks=[]))
        add_reliability_hooks(cfg, finite_loss_check=flag)
        assert {h['type'] for h in cfg.custom_hooks} == hooks
        assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'


# The learning rate jumps to 1e20 after 2 iterations: iteration 3's loss is
# still finite (weights of iteration 2), its update diverges the weights,
# iter_3.pth holds them, iteration 4's loss is NaN.
DIVERGE_AT_3 = """
train_cfg = dict(max_iters=6, val_interval=100)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
param_scheduler = [dict(type='MultiStepLR', by_epoch=False, milestones=[2],
                        gamma=1e24)]
"""


def _finite(path):
    state = load_from_file_weights_only(path)['state_dict']
    return all(torch.isfinite(v).all() for v in state.values()
               if v.is_floating_point())


@pytest.mark.slow
def test_names_the_checkpoint_before_the_divergence_and_resume_with_lower_lr(
        train_tool, tmp_path):
    cfg = tiny_seg_config(tmp_path / 'fpn.py', 'semantic_fpn_litv2_s_ade20k',
                          make_ade(tmp_path / 'ade'), iters=6,
                          extra=DIVERGE_AT_3)
    work = tmp_path / 'work'
    with pytest.raises(NonFiniteLossError, match='iteration 4') as err:
        train_tool.main([str(cfg), '--work-dir', str(work)])
    message = str(err.value)
    good, bad = work / 'iter_2.pth', work / 'iter_3.pth'
    assert bad.exists()  # saved after the diverging step
    assert (f'last checkpoint saved before the loss went bad: {good} '
            f'({bad} was saved after the weights went bad)') in message
    assert f'--resume {good} --cfg-options optim_wrapper.optimizer.lr=' \
        in message
    # the advice as written: the config's lower learning rate is taken on
    # resume (the schedule scaled by 1e-24: 1e-4 after the milestone)
    runner = train_tool.main([str(cfg), '--work-dir', str(work), '--resume',
                              str(good), '--cfg-options',
                              'optim_wrapper.optimizer.lr=1e-28'])
    assert runner.iter == 6 and _finite(work / 'iter_6.pth')
    lrs = runner.optim_wrapper.get_lr()['lr']
    assert lrs == pytest.approx([1e-4], rel=1e-6)
    log = '\n'.join(p.read_text() for p in work.rglob('*.log'))
    assert 'schedule scaled by 1e-24' in log


def test_no_good_checkpoint_is_said(train_tool, tmp_path):
    cfg = tiny_seg_config(tmp_path / 'fpn.py', 'semantic_fpn_litv2_s_ade20k',
                          make_ade(tmp_path / 'ade'), iters=3,
                          extra=DIVERGE_AT_3.replace('[2]', '[0]'))
    work = tmp_path / 'work'
    with pytest.raises(NonFiniteLossError) as err:
        train_tool.main([str(cfg), '--work-dir', str(work)])
    message = str(err.value)
    assert 'no checkpoint was saved before the loss went bad' in message
    assert 'Resume from it' not in message


class _Runner:
    def __init__(self):
        from mmengine.logging import MessageHub
        self.message_hub = MessageHub.get_instance(f'fl_{id(self)}')
        self.iter = 0


def test_a_loss_growing_by_orders_of_magnitude_is_flagged(capsys):
    from mmengine.logging import MMLogger
    # print_log's 'current' logger, new: it writes to the captured stdout
    MMLogger.get_instance('finite_loss_explosion_test')
    hook, runner = FiniteLossHook(factor=1000, window=5), _Runner()
    losses = [5.0, 4.0, 4.5, 3.0, 4.0, 3.5, 2e4, 3e4, 5e7, 9e7]
    saved = {3: 'iter_3.pth', 7: 'iter_7.pth'}
    for i, loss in enumerate(losses):
        runner.iter = i
        hook.before_train_iter(runner, i)
        hook.after_train_iter(runner, i, outputs=dict(
            loss=torch.tensor(loss)))
        if i + 1 in saved:
            runner.message_hub.update_info('last_ckpt', saved[i + 1])
    hook.after_train(runner)
    warnings = [line for line in capsys.readouterr().out.splitlines()
                if 'WARNING - FiniteLossHook' in line]
    # at iteration 7 (2e4, 5000x the median 4.0) and at 5e7 (>1000 x 2e4)
    assert len(warnings) == 3, warnings
    assert '2e+04 at iteration 7' in warnings[0]
    assert 'Last checkpoint before it: iter_3.pth' in warnings[0]
    assert 'this run diverged' in warnings[2]
    # iter_7.pth was followed by exploding losses only: not named good
    assert hook._good == 'iter_3.pth'


@pytest.mark.slow
def test_test_tool_refuses_non_finite_weights(train_tool, tmp_path):
    from litv2_openmmlab.engine.hooks import NonFiniteWeightsError
    from tools import test as test_tool
    cfg = tiny_seg_config(tmp_path / 'fpn.py', 'semantic_fpn_litv2_s_ade20k',
                          make_ade(tmp_path / 'ade'), iters=1)
    work = tmp_path / 'work'
    train_tool.main([str(cfg), '--work-dir', str(work)])
    ckpt = load_from_file_weights_only(work / 'iter_1.pth')
    key = next(k for k, v in ckpt['state_dict'].items()
               if v.is_floating_point())
    ckpt['state_dict'][key] = torch.full_like(ckpt['state_dict'][key],
                                              float('nan'))
    torch.save(ckpt, tmp_path / 'nan.pth')
    with pytest.raises(NonFiniteWeightsError,
                       match=rf'nan\.pth: 1 of \d+ weight tensors hold NaN '
                       rf'or inf \({key}\)'):
        test_tool.main([str(cfg), str(tmp_path / 'nan.pth'),
                        '--work-dir', str(tmp_path / 'test')])
