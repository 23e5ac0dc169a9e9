"""A resume that cannot continue the run exactly says so in one line at the
start (ResumeCheckHook); a new learning rate is taken on resume."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MMLogger

from litv2_openmmlab.engine.hooks import ResumeCheckHook


class _Loader(list):
    batch_size = 2


def runner(batches=6, batch_size=2, seed=0, config_seed=0, lr=1e-4):
    loader = _Loader(range(batches))
    loader.batch_size = batch_size
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    optimizer.param_groups[0]['initial_lr'] = lr
    loop = SimpleNamespace(dataloader=loader)
    return SimpleNamespace(
        _resume=True, _train_loop=loop, train_loop=loop, seed=seed,
        _randomness_cfg=dict(seed=config_seed),
        optim_wrapper=SimpleNamespace(optimizer=optimizer))


def checkpoint(epoch=1, iteration=6, world_size=1, batch_size=2, seed=0,
               lr=1e-4):
    return dict(
        meta=dict(epoch=epoch, iter=iteration, world_size=world_size,
                  batch_size=batch_size, seed=seed),
        optimizer=dict(state={}, param_groups=[dict(lr=lr / 10,
                                                    initial_lr=lr)]),
        param_schedulers=[dict(param_name='lr', base_values=[lr],
                               _last_value=[lr / 10], eta_min=lr / 100)])


_loggers = iter(range(10**6))


def resume(run, ckpt, capsys):
    """The hook on ``ckpt``; the warning lines it logged."""
    capsys.readouterr()
    # a new current logger, writing to the captured stdout
    MMLogger.get_instance(f'resume_check_test_{next(_loggers)}')
    ResumeCheckHook().after_load_checkpoint(run, ckpt)
    return [line for line in capsys.readouterr().out.splitlines()
            if 'WARNING - ResumeCheckHook' in line]


def test_an_exact_resume_says_nothing(capsys):
    assert resume(runner(), checkpoint(), capsys) == []


def test_iteration_checkpoint_of_an_epoch_based_run(capsys):
    (line,) = resume(runner(), checkpoint(epoch=1, iteration=10), capsys)
    assert ('saved at iteration 10, 4 of 6 iterations into epoch 2 of an '
            'epoch-based run') in line


def test_other_processes_batch_size_and_seed(capsys):
    (line,) = resume(runner(batch_size=4, seed=7, config_seed=None),
                     checkpoint(world_size=2, batch_size=2, seed=3), capsys)
    assert 'trained by 2 processes, this run has 1' in line
    assert 'batch size per process was 2, this run has 4' in line
    assert 'random seed was 3' in line and 'built with 7' in line
    assert 'randomness.seed is not set' in line


def test_load_from_is_not_a_resume(capsys):
    run = runner(batch_size=4)
    run._resume = False
    assert resume(run, checkpoint(batch_size=2), capsys) == []


def test_the_configs_learning_rate_scales_the_resumed_schedule(capsys):
    ckpt = checkpoint(lr=1e-2)
    (line,) = resume(runner(lr=1e-4), ckpt, capsys)
    assert "learning rate 0.0001 differs from the checkpoint's 0.01" in line
    group = ckpt['optimizer']['param_groups'][0]
    assert group['lr'] == pytest.approx(1e-5)
    assert group['initial_lr'] == pytest.approx(1e-4)
    sched = ckpt['param_schedulers'][0]
    assert sched['base_values'] == pytest.approx([1e-4])
    assert sched['_last_value'] == pytest.approx([1e-5])
    assert sched['eta_min'] == pytest.approx(1e-6)


def test_batch_size_and_processes_are_saved():
    ckpt = dict(meta={})
    ResumeCheckHook().before_save_checkpoint(runner(batch_size=3), ckpt)
    assert ckpt['meta']['world_size'] == 1
    assert ckpt['meta']['batch_size'] == 3
