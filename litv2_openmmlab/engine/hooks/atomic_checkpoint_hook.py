"""Checkpoints saved atomically: a kill during saving leaves the previous
checkpoint (and the ``last_checkpoint`` pointer to it) intact.

mmengine 0.10.7 writes a checkpoint with ``open(path, 'wb').write(...)`` (a
kill leaves a truncated file under the final name), writes ``last_checkpoint``
the same way, and with ``max_keep_ckpts`` deletes the oldest checkpoint
*before* writing the new one. :class:`AtomicCheckpointHook` (registered in
mmengine's ``HOOKS`` on import of this module) is ``CheckpointHook`` saving
through the ``atomic_local`` file backend
(:mod:`litv2_openmmlab.checkpoint.atomic_write`: temporary file, ``fsync``,
``os.replace``), which deletes old checkpoints only after the new one and
the pointer are in place
(``default_hooks.checkpoint.type='AtomicCheckpointHook'``; tools/train.py
makes the switch).

Room on disk: while a checkpoint is saved, the previous one (kept, or about
to be deleted by ``max_keep_ckpts``) is still there, so the disk needs room
for one checkpoint more than mmengine's hook needs. ``delete_first=True``
trades that safety for the room: the checkpoint beyond ``max_keep_ckpts`` is
deleted before the new one is written, as mmengine does (a kill or a failed
write during the save then leaves the older checkpoints only).

At the start of training the hook takes the work directory's lock
(:mod:`.work_dir_lock`, one run per work directory) and only then removes
temporary files left by a dead run's interrupted save.
"""
import logging
import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from ...checkpoint.atomic_write import (
    DiskWriteError,
    temp_files,
    write_atomically,
)
from .work_dir_lock import lock_work_dir, unlock_work_dir


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) whose checkpoints and
    ``last_checkpoint`` pointer are written atomically into a local
    directory, and which deletes a checkpoint beyond ``max_keep_ckpts`` only
    once its successor is saved. With ``backend_args`` / ``file_client_args``
    or a remote ``out_dir``, it saves as ``CheckpointHook`` does (and says
    so).

    Args:
        delete_first (bool): delete the checkpoint beyond ``max_keep_ckpts``
            before saving the new one (needs no room for an extra
            checkpoint; a failed save leaves one checkpoint fewer). Default
            False: delete it once the new one is in place.
        Others: as ``CheckpointHook``.
    """

    def __init__(self, *args, delete_first: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.delete_first = delete_first
        self._locked = False

    def before_train(self, runner) -> None:
        out_dir = str(self.out_dir or runner.work_dir)
        if self.backend_args is None and self.file_client_args is None \
                and '://' not in out_dir:
            self.backend_args = dict(backend='atomic_local')
        elif (self.backend_args or {}).get('backend') != 'atomic_local':
            print_log(f'AtomicCheckpointHook: checkpoints in {out_dir} are '
                      'written by the configured file backend, not '
                      'atomically', logger='current', level=logging.WARNING)
        super().before_train(runner)
        if not is_main_process():
            return
        # the work directory is this run's (raises if another run owns it):
        # temporary files found now are a dead run's
        self._locked = lock_work_dir(runner.work_dir)
        if self.backend_args == dict(backend='atomic_local'):
            for directory in {osp.abspath(str(self.out_dir)),
                              osp.abspath(str(runner.work_dir))}:
                for tmp in temp_files(directory):
                    os.remove(tmp)
                    print_log(f'AtomicCheckpointHook: removed {tmp}, left by '
                              'an interrupted save', logger='current')

    def after_run(self, runner) -> None:
        if self._locked:
            unlock_work_dir(runner.work_dir)
            self._locked = False

    def _save_checkpoint_with_step(self, runner, step, meta):
        # CheckpointHook's save, whose removal of the checkpoint beyond
        # max_keep_ckpts (done before it saves) is held back until the new
        # checkpoint and the pointer to it are written
        held = []
        backend = self.file_backend
        if not self.delete_first:
            self.file_backend = _HoldRemovals(backend, held)
        try:
            super()._save_checkpoint_with_step(runner, step, meta)
            if is_main_process():
                # CheckpointHook wrote the pointer in place; write it again
                # atomically (a kill in between leaves it whole)
                write_atomically(osp.join(runner.work_dir, 'last_checkpoint'),
                                 str(self.last_ckpt).encode())
        except DiskWriteError as err:
            hint = ('' if self.delete_first else
                    '; the previous checkpoint is kept until the new one is '
                    'saved: default_hooks.checkpoint.delete_first=True needs '
                    'no room for that extra checkpoint')
            raise DiskWriteError(err.errno, f'{err.strerror}{hint}') from err
        finally:
            self.file_backend = backend
        # the pointer names the new checkpoint: only now drop the stale one
        for remove, path in held:
            getattr(backend, remove)(path)


class _HoldRemovals:
    """A file backend that records ``remove`` / ``rmtree`` calls in
    ``held`` instead of doing them; everything else goes to ``backend``."""

    def __init__(self, backend, held: list):
        self._backend = backend
        self._held = held

    def remove(self, path) -> None:
        self._held.append(('remove', path))

    def rmtree(self, path) -> None:
        self._held.append(('rmtree', path))

    def __getattr__(self, name):
        return getattr(self._backend, name)
