"""Checkpoints written atomically: a kill during saving leaves the previous
checkpoint (and the ``last_checkpoint`` pointer to it) intact.

mmengine 0.10.7 writes a checkpoint with ``open(path, 'wb').write(...)`` (a
kill leaves a truncated file under the final name), writes ``last_checkpoint``
the same way, and with ``max_keep_ckpts`` deletes the oldest checkpoint
*before* writing the new one. Here every file goes to a temporary file in the
same directory, is flushed to disk (``fsync``) and renamed over the final name
(``os.replace``, atomic on POSIX); old checkpoints are deleted only after the
new one and the pointer are in place.

* :func:`write_atomically` - the primitive;
* :class:`AtomicLocalBackend` - mmengine's local file backend with atomic
  ``put`` / ``put_text``, registered as ``backend='atomic_local'``;
* :class:`AtomicCheckpointHook` - ``CheckpointHook`` saving through it
  (``default_hooks.checkpoint.type='AtomicCheckpointHook'``; tools/train.py
  makes the switch).
"""
import glob
import os
import os.path as osp
import tempfile

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.registry import HOOKS


def write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either its old
    content or all of ``data``, whenever the process dies."""
    path = osp.abspath(path)
    directory = osp.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory,
                               prefix=f'.{osp.basename(path)}.',
                               suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; checkpoints are shared
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    if os.name == 'posix':  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose writes go through
    :func:`write_atomically`."""

    def put(self, obj: bytes, filepath) -> None:
        write_atomically(str(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        write_atomically(str(filepath), obj.encode(encoding))


register_backend('atomic_local', AtomicLocalBackend, force=True)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) whose checkpoints and
    ``last_checkpoint`` pointer are written atomically into a local
    directory, and which deletes a checkpoint beyond ``max_keep_ckpts`` only
    once its successor is saved. With ``backend_args`` / ``file_client_args``
    or a remote ``out_dir``, it saves as ``CheckpointHook`` does (and says
    so)."""

    def before_train(self, runner) -> None:
        out_dir = str(self.out_dir or runner.work_dir)
        if self.backend_args is None and self.file_client_args is None \
                and '://' not in out_dir:
            self.backend_args = dict(backend='atomic_local')
        elif (self.backend_args or {}).get('backend') != 'atomic_local':
            print_log(f'AtomicCheckpointHook: checkpoints in {out_dir} are '
                      'written by the configured file backend, not '
                      'atomically', logger='current', level='WARNING')
        super().before_train(runner)
        if is_main_process() and self.backend_args == dict(
                backend='atomic_local'):
            # temporary files of saves that a kill interrupted
            for tmp in glob.glob(osp.join(self.out_dir, '.*.pth.*.tmp')):
                os.remove(tmp)
                print_log(f'AtomicCheckpointHook: removed {tmp}, left by an '
                          'interrupted save', logger='current')

    def _save_checkpoint_with_step(self, runner, step, meta):
        # as CheckpointHook, but: save, then point to it, then delete stale
        stale = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                stale = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        write_atomically(osp.join(runner.work_dir, 'last_checkpoint'),
                         str(self.last_ckpt).encode())
        if stale is not None:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(stale))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # deepspeed: a directory
                self.file_backend.rmtree(path)
