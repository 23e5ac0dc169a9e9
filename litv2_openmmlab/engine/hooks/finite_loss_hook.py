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

Which checkpoint is good: the checkpoint saved after iteration ``k`` holds
the weights that iteration ``k + 1`` computes its loss with. A checkpoint is
named good once the loss of the iteration after it was finite (and not
exploding, see below); the error names the last such checkpoint, not merely
the last one saved (with a learning rate far too high, the step that makes
the weights diverge still has a finite loss, and the checkpoint after it
holds diverged weights), or says that there is none.

A loss that grows by orders of magnitude while finite (``factor`` times the
median of the last ``window`` losses) is logged as a warning, again at each
further ``factor`` of growth, and once more when training ends.

:class:`FiniteWeightsHook` refuses a loaded checkpoint (``tools/test.py``,
``load_from``, ``--resume``) whose weights are not finite.
"""
import logging
import math
import statistics
from collections import deque

import torch
from mmengine.dist import all_reduce, get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop


class NonFiniteLossError(RuntimeError):
    """A training loss was NaN or infinite."""


class NonFiniteWeightsError(RuntimeError):
    """A checkpoint holds NaN or infinite weights."""


def _total_loss(outputs):
    value = (outputs or {}).get('loss')
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean())
    return float(value) if isinstance(value, (int, float)) else None


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
    """Raise :class:`NonFiniteLossError` when a loss term is NaN or inf;
    warn when the total loss grows ``factor`` times above the median of the
    last ``window`` ones (see the module's doc)."""

    priority = 'ABOVE_NORMAL'  # before LoggerHook and CheckpointHook

    def __init__(self, factor: float = 1000.0, window: int = 20):
        if not factor > 1 or window < 1:
            raise ValueError(f'FiniteLossHook: factor={factor!r} must be > 1 '
                             f'and window={window!r} >= 1')
        self.factor, self.window = float(factor), int(window)
        self._recent = deque(maxlen=self.window)  # recent sane total losses
        self._ckpt_before = None  # last checkpoint when this iteration began
        self._good = None  # last checkpoint followed by a sane loss
        self._warned_at = None  # the loss of the last explosion warning
        self._first_explosion = None  # (iteration, loss, median)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._ckpt_before = runner.message_hub.get_info('last_ckpt')

    def _exploding(self, runner, loss) -> bool:
        """Whether ``loss`` is ``factor`` times above the recent ones; warns
        at the first such loss and at each further ``factor``."""
        if loss is None or not math.isfinite(loss):
            return False
        if len(self._recent) < min(5, self.window):
            self._recent.append(loss)
            return False
        median = statistics.median(self._recent)
        if not (median > 0 and loss > self.factor * median):
            self._recent.append(loss)
            self._warned_at = None
            return False
        if self._warned_at is None or loss > self.factor * self._warned_at:
            self._warned_at = loss
            if self._first_explosion is None:
                self._first_explosion = (runner.iter + 1, loss, median)
            print_log(
                f'FiniteLossHook: the loss grows by orders of magnitude: '
                f'{loss:.4g} at iteration {runner.iter + 1}, '
                f'{loss / median:.3g} times the median of the last '
                f'{len(self._recent)} ({median:.4g}); training is diverging '
                '(learning rate too high?). Last checkpoint before it: '
                f'{self._good or "none"}', logger='current',
                level=logging.WARNING)
        return True

    def after_train(self, runner) -> None:
        if self._first_explosion is not None:
            iteration, loss, median = self._first_explosion
            print_log(
                f'FiniteLossHook: this run diverged: its loss grew to '
                f'{loss:.4g} at iteration {iteration} from a median of '
                f'{median:.4g}; its results are not to be trusted. Last '
                f'checkpoint before it: {self._good or "none"}',
                logger='current', level=logging.WARNING)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        bad = non_finite_losses(outputs)
        exploding = not bad and self._exploding(runner, _total_loss(outputs))
        any_bad = bool(bad)
        _, world_size = get_dist_info()
        if world_size > 1:  # stop every process, not only the one that saw it
            flag = torch.tensor([float(any_bad)])
            all_reduce(flag)
            any_bad = flag.item() > 0
        if not any_bad:
            if not exploding:
                # the weights this iteration started from gave a sane loss
                self._good = self._ckpt_before
            return
        terms = (', '.join(f'{k}={v}' for k, v in bad.items())
                 or 'on another process')
        last = runner.message_hub.get_info('last_ckpt')
        where = f'iteration {runner.iter + 1}'
        if not isinstance(runner.train_loop, IterBasedTrainLoop):
            where += (f' (epoch {runner.epoch + 1}, its iteration '
                      f'{batch_idx + 1})')
        later = (f' ({last} was saved after the weights went bad)'
                 if last and last != self._good else '')
        lr = 'optim_wrapper.optimizer.lr=LOWER_LR'
        if self._good:
            advice = (f'last checkpoint saved before the loss went bad: '
                      f'{self._good}{later}. Resume from it with a lower '
                      f'learning rate: tools/train.py CONFIG --resume '
                      f'{self._good} --cfg-options {lr}')
        else:
            advice = ('no checkpoint was saved before the loss went bad'
                      f'{later}. Start again with a lower learning rate: '
                      f'tools/train.py CONFIG --cfg-options {lr}')
        msg = (f'non-finite loss at {where}: {terms}. Training stopped before '
               f'this iteration is saved; {advice} (or train without this '
               'check: --no-finite-loss-check)')
        runner.logger.error(msg)
        raise NonFiniteLossError(msg)


@HOOKS.register_module()
class FiniteWeightsHook(Hook):
    """Raise :class:`NonFiniteWeightsError`, naming the file and the first
    tensors, when a loaded checkpoint's weights hold NaN or inf."""

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint) -> None:
        state = checkpoint.get('state_dict', checkpoint)
        floats = {k: v for k, v in state.items()
                  if isinstance(v, torch.Tensor) and v.is_floating_point()}
        bad = [k for k, v in floats.items()
               if not bool(torch.isfinite(v).all())]
        if not bad:
            return
        name = getattr(runner, '_load_from', None) or 'the checkpoint'
        raise NonFiniteWeightsError(
            f'{name}: {len(bad)} of {len(floats)} weight tensors hold NaN or '
            f'inf ({", ".join(bad[:3])}{", ..." if len(bad) > 3 else ""}); '
            'it was saved after training diverged: use an earlier '
            'checkpoint')
