"""Stop training at the first non-finite loss, before a checkpoint of NaN
weights is written.

mmdet's ``CheckInvalidLossHook`` looks every ``interval`` (50) iterations and
only at the total; mmseg has nothing. :class:`FiniteLossHook` looks at every
loss term (the ``outputs`` keys holding ``'loss'``, which mmengine sums into
the total) after every iteration, and runs before ``CheckpointHook`` and the
logger, so the error names the iteration and the terms and the last
checkpoint on disk is the last good one. With several processes all of them
stop at the same iteration. ``tools/train.py`` adds it unless
``--no-finite-loss-check`` is given.
"""
import math

import torch
from mmengine.dist import all_reduce, get_dist_info
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop


class NonFiniteLossError(RuntimeError):
    """A training loss was NaN or infinite."""


def non_finite_losses(outputs) -> dict:
    """``{name: value}`` of the loss terms in ``outputs`` that are not
    finite."""
    bad = {}
    for name, value in (outputs or {}).items():
        if 'loss' not in name:
            continue
        if isinstance(value, torch.Tensor):
            value = value.detach().float()
            if not bool(torch.isfinite(value).all()):
                bad[name] = value.mean().item()
        elif isinstance(value, (int, float)) and not math.isfinite(value):
            bad[name] = value
    return bad


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` when a loss term is NaN or inf."""

    priority = 'ABOVE_NORMAL'  # before LoggerHook and CheckpointHook

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        bad = non_finite_losses(outputs)
        _, world_size = get_dist_info()
        if world_size > 1:  # stop every process, not only the one that saw it
            flag = torch.tensor([float(bool(bad))])
            all_reduce(flag)
            if flag.item() == 0:
                return
        elif not bad:
            return
        terms = (', '.join(f'{k}={v}' for k, v in bad.items())
                 or 'on another process')
        last = runner.message_hub.get_info('last_ckpt')
        where = f'iteration {runner.iter + 1}'
        if not isinstance(runner.train_loop, IterBasedTrainLoop):
            where += (f' (epoch {runner.epoch + 1}, its iteration '
                      f'{batch_idx + 1})')
        msg = (f'non-finite loss at {where}: {terms}. Training stopped before '
               'this '
               'iteration is saved; last checkpoint: '
               f'{last or "none"}. Resume from it (e.g. with a lower learning '
               'rate), or train without this check: tools/train.py '
               '--no-finite-loss-check')
        runner.logger.error(msg)
        raise NonFiniteLossError(msg)
