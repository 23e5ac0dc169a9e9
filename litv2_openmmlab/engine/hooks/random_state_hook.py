"""Random-number-generator states in checkpoints, so that a resumed training
continues with the very random numbers the uninterrupted one would draw.

What mmengine 0.10.7 restores on ``resume``: model, optimizer, schedulers,
message hub, epoch/iteration, and (iteration-based loops) the data order, by
drawing and discarding the batches already trained. What it does not: the
states of python's ``random``, numpy's and torch's generators, which data
augmentation (in the main process with ``num_workers=0``), drop path and the
detectors' samplers consume; after a resume they restart from the seed.

:class:`RandomStateHook` keeps, at every iteration end (iteration-based loop)
or epoch end (epoch-based loop), each process's states; the checkpoint
written there stores those of all processes (``checkpoint['rng_states']``,
plain ints and byte tensors: loadable with ``weights_only=True``). The states
are set again right before the next batch is drawn - on resume after the
batches already trained have been skipped, and in the uninterrupted run too,
so that random numbers consumed in between (validation) do not shift
training in one run and not in the other.
"""
import random

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop


def get_rng_state() -> dict:
    """This process's generator states, as plain data."""
    version, internal, gauss = random.getstate()
    _, key, pos, has_gauss, cached = np.random.get_state()
    state = dict(python=(version, tuple(internal), gauss),
                 numpy=(key.tolist(), int(pos), int(has_gauss), float(cached)),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of :func:`get_rng_state`."""
    random.setstate(state['python'])
    key, pos, has_gauss, cached = state['numpy']
    np.random.set_state(('MT19937', np.asarray(key, dtype=np.uint32), pos,
                         has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


class _SetStateBeforeNextBatch:
    """Wraps an iteration-based loop's data iterator: after ``skip`` batches
    (those drawn again on resume), sets the hook's kept state before each
    batch is drawn."""

    def __init__(self, iterator, hook, skip: int):
        self.iterator, self.hook, self.skip = iterator, hook, skip

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip > 0:
            self.skip -= 1
        else:
            self.hook.set_kept_state()
        return next(self.iterator)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save every process's RNG states in each checkpoint; restore them on
    resume (see the module's doc). Runs before ``CheckpointHook``."""

    priority = 'LOW'  # after_train_* before CheckpointHook (VERY_LOW)

    def __init__(self):
        self._kept = None  # this process's states to set before next batch
        self._all = None  # every process's states, for the next checkpoint
        self._resumed = None  # (epoch, iter, states) read from a checkpoint

    # -- keep the states at each boundary ---------------------------------
    def _keep(self):
        self._kept = get_rng_state()
        _, world_size = get_dist_info()
        self._all = (all_gather_object(self._kept) if world_size > 1 else
                     [self._kept])

    def set_kept_state(self):
        if self._kept is not None:
            set_rng_state(self._kept)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if isinstance(runner.train_loop, IterBasedTrainLoop):
            self._keep()

    def after_train_epoch(self, runner):
        if not isinstance(runner.train_loop, IterBasedTrainLoop):
            self._keep()

    def before_save_checkpoint(self, runner, checkpoint):
        if self._all is not None:
            checkpoint['rng_states'] = self._all

    # -- resume -----------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint):
        meta = checkpoint.get('meta', {})
        if 'rng_states' in checkpoint:
            self._resumed = (meta.get('epoch'), meta.get('iter'),
                             checkpoint['rng_states'])

    def before_train(self, runner):
        if self._resumed is None:
            return
        epoch, iteration, states = self._resumed
        self._resumed = None
        if (runner.epoch, runner.iter) != (epoch, iteration):
            return  # load_from without resume: a fresh run
        rank, world_size = get_dist_info()
        if len(states) != world_size:
            print_log(f'RandomStateHook: the checkpoint holds the random '
                      f'states of {len(states)} processes, this run has '
                      f'{world_size}: they are not restored (the run goes on, '
                      'but not with the same random numbers)',
                      logger='current', level='WARNING')
            return
        self._kept = states[rank]
        print_log('RandomStateHook: random states restored from the '
                  'checkpoint', logger='current')

    def before_train_epoch(self, runner):
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop):
            # called once, before the loop skips the batches already trained
            if not isinstance(loop.dataloader_iterator,
                              _SetStateBeforeNextBatch):
                loop.dataloader_iterator = _SetStateBeforeNextBatch(
                    loop.dataloader_iterator, self, skip=loop.iter)
        else:  # the epoch's data iterator is made after this hook
            self.set_kept_state()
