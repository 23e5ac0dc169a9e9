"""A resume says what it cannot restore, and takes a new learning rate.

mmengine 0.10.7 resumes silently where the result cannot be the
uninterrupted run's:

* an epoch-based run resumed from an iteration checkpoint
  (``default_hooks.checkpoint.by_epoch=False``) restarts the epoch from its
  first batch: the batches of that epoch already trained are trained again
  (more iterations than ``max_epochs`` asks, another final learning rate);
* another number of processes or another batch size per process: other
  batches, another total batch size;
* another random seed (``randomness.seed``, or none set, so each run draws
  one): the data loader of the resumed run was built with its own seed, so
  the data order and augmentation differ (mmengine sets the checkpoint's seed
  again only after the data loader exists).

:class:`ResumeCheckHook` logs one warning line at the start of such a resume
naming each reason; it stores the number of processes and the batch size in
every checkpoint (``meta['world_size']``, ``meta['batch_size']``) to tell.

A new learning rate: mmengine restores the optimizer's and the schedulers'
states on resume, so a learning rate set in the config or on the command
line (``--cfg-options optim_wrapper.optimizer.lr=...``) used to be ignored.
When the config's base learning rate differs from the checkpoint's (every
parameter group by the same factor), the hook scales the checkpoint's
learning rates (the optimizer's ``lr`` / ``initial_lr`` and the learning-rate
schedulers' base, last and minimum values) by that factor before mmengine
loads them, and says so in one line: the schedule goes on where it stopped,
at the new level. That is how to continue from a checkpoint saved before a
loss diverged.
"""
import logging
import math

from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

# a learning-rate scheduler's state entries that are learning rates
_LR_STATE_KEYS = ('base_values', '_last_value', 'eta_min', 'eta_max',
                  'end_value', 'start_value')


def _batch_size(runner):
    loader = getattr(runner.train_loop, 'dataloader', None)
    return getattr(loader, 'batch_size', None)


def _scale_lr_states(checkpoint, factor) -> bool:
    """Scale the learning rates in ``checkpoint`` (optimizer and
    schedulers) by ``factor``; False if they are not where expected."""
    optimizer = checkpoint.get('optimizer')
    if not isinstance(optimizer, dict) or 'param_groups' not in optimizer:
        return False
    for group in optimizer['param_groups']:
        for key in ('lr', 'initial_lr'):
            if isinstance(group.get(key), (int, float)):
                group[key] *= factor
    schedulers = checkpoint.get('param_schedulers') or []
    if isinstance(schedulers, dict):  # several optimizers: not handled
        return False
    for state in schedulers:
        if not isinstance(state, dict) or state.get('param_name') != 'lr':
            continue
        for key in _LR_STATE_KEYS:
            value = state.get(key)
            if isinstance(value, (int, float)) and not isinstance(value,
                                                                  bool):
                state[key] = value * factor
            elif isinstance(value, list):
                state[key] = [v * factor if isinstance(v, (int, float))
                              else v for v in value]
    return True


def _base_lrs(groups):
    return [g.get('initial_lr', g.get('lr')) for g in groups]


@HOOKS.register_module()
class ResumeCheckHook(Hook):
    """Say at the start of a resume what makes it inexact; apply the
    config's learning rate when it differs from the checkpoint's (see the
    module's doc)."""

    priority = 'VERY_HIGH'

    def before_save_checkpoint(self, runner, checkpoint) -> None:
        _, world_size = get_dist_info()
        meta = checkpoint.setdefault('meta', {})
        meta['world_size'] = world_size
        meta['batch_size'] = _batch_size(runner)

    def after_load_checkpoint(self, runner, checkpoint) -> None:
        if not getattr(runner, '_resume', False) or \
                getattr(runner, '_train_loop', None) is None or \
                isinstance(runner._train_loop, dict):
            return  # load_from, or no training: nothing is resumed
        meta = checkpoint.get('meta') or {}
        reasons = self._inexact(runner, meta)
        if reasons:
            print_log('ResumeCheckHook: this resume cannot continue the run '
                      'exactly: ' + '; '.join(reasons), logger='current',
                      level=logging.WARNING)
        self._apply_config_lr(runner, checkpoint)

    @staticmethod
    def _inexact(runner, meta) -> list:
        reasons = []
        loop = runner.train_loop
        epoch, iteration = meta.get('epoch'), meta.get('iter')
        if not isinstance(loop, IterBasedTrainLoop) and \
                isinstance(epoch, int) and isinstance(iteration, int):
            per_epoch = len(loop.dataloader)
            inside = iteration - epoch * per_epoch
            if inside > 0:
                reasons.append(
                    f'the checkpoint was saved at iteration {iteration}, '
                    f'{inside} of {per_epoch} iterations into epoch '
                    f'{epoch + 1} of an epoch-based run: mmengine restarts '
                    f'that epoch from its first batch, so those {inside} '
                    'iterations are trained again (resume from an epoch '
                    'checkpoint to continue exactly)')
        _, world_size = get_dist_info()
        saved_world = meta.get('world_size')
        if saved_world is not None and saved_world != world_size:
            reasons.append(f'it was trained by {saved_world} processes, '
                           f'this run has {world_size}')
        saved_batch, batch = meta.get('batch_size'), _batch_size(runner)
        if saved_batch is not None and batch is not None and \
                saved_batch != batch:
            reasons.append(f'its batch size per process was {saved_batch}, '
                           f'this run has {batch}')
        seed = meta.get('seed')
        if seed is not None and seed != runner.seed:
            how = ('randomness.seed is not set, so each run draws its own'
                   if runner._randomness_cfg.get('seed') is None else
                   'randomness.seed differs')
            reasons.append(f'its random seed was {seed}, this run\'s data '
                           f'loader was built with {runner.seed} ({how}): '
                           'another data order and augmentation')
        return reasons

    @staticmethod
    def _apply_config_lr(runner, checkpoint) -> None:
        saved = (checkpoint.get('optimizer') or {}).get('param_groups')
        wrapper = getattr(runner, 'optim_wrapper', None)
        optimizer = getattr(wrapper, 'optimizer', None)
        if not saved or optimizer is None or \
                len(saved) != len(optimizer.param_groups):
            return
        pairs = list(zip(_base_lrs(optimizer.param_groups),
                         _base_lrs(saved)))
        if any(not isinstance(c, (int, float)) or not isinstance(
                s, (int, float)) or s <= 0 for c, s in pairs):
            return
        factors = [c / s for c, s in pairs]
        if all(math.isclose(f, 1.0, rel_tol=1e-6) for f in factors):
            return
        if not all(math.isclose(f, factors[0], rel_tol=1e-6)
                   for f in factors):
            print_log('ResumeCheckHook: the config\'s learning rates differ '
                      'from the checkpoint\'s by different factors per '
                      'parameter group; the checkpoint\'s are resumed',
                      logger='current', level=logging.WARNING)
            return
        if _scale_lr_states(checkpoint, factors[0]):
            print_log(f'ResumeCheckHook: the config\'s learning rate '
                      f'{pairs[0][0]:g} differs from the checkpoint\'s '
                      f'{pairs[0][1]:g}: the resumed run goes on with its '
                      f'schedule scaled by {factors[0]:g} (optimizer and '
                      'learning-rate schedulers)', logger='current',
                      level=logging.WARNING)
