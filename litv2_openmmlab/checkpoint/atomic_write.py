"""Files written atomically: a kill during writing leaves the file's previous
content intact.

mmengine 0.10.7 writes a checkpoint with ``open(path, 'wb').write(...)`` (a
kill leaves a truncated file under the final name), and writes
``last_checkpoint`` the same way. Here every file goes to a temporary file in
the same directory, is flushed to disk (``fsync``) and renamed over the final
name (``os.replace``, atomic on POSIX).

* :func:`write_atomically` - the primitive;
* :class:`AtomicLocalBackend` - mmengine's local file backend with atomic
  ``put`` / ``put_text``, registered (on import of this module) in
  mmengine's file backends as ``backend='atomic_local'``; the
  ``AtomicCheckpointHook`` of :mod:`litv2_openmmlab.engine.hooks` saves
  through it.
"""
import os
import os.path as osp
import tempfile

from mmengine.fileio import LocalBackend, register_backend


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
