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
  through it;
* :func:`temp_files` - the temporary files of this module in a directory
  (left there by a process killed while writing).

A failed write (a full disk, a quota, an I/O error) raises
:class:`DiskWriteError`, an ``OSError`` with the same ``errno`` whose
one-line message names the file, the space needed and the space free.
"""
import errno as errno_names
import os
import os.path as osp
import re
import shutil
import tempfile

from mmengine.fileio import LocalBackend, register_backend

# mkstemp's names: prefix '.<final name>.', 8 random characters, '.tmp'
_TEMP_NAME = re.compile(r'^\..+\.[a-z0-9_]{8}\.tmp$')


class DiskWriteError(OSError):
    """Writing a file failed; the message names the file, the space needed
    and the space free."""


def _mb(n: int) -> str:
    return f'{n / 2**20:.1f} MB'


def free_space(directory: str):
    """Bytes free for this user in ``directory``'s file system (None if it
    cannot be told)."""
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def temp_files(directory) -> list:
    """Paths of the temporary files that :func:`write_atomically` makes in
    ``directory`` (``.iter_4.pth.k2j3h4g5.tmp``,
    ``.last_checkpoint.a1b2c3d4.tmp``, ...)."""
    directory = str(directory)
    if not osp.isdir(directory):
        return []
    return sorted(osp.join(directory, name) for name in os.listdir(directory)
                  if _TEMP_NAME.match(name))



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
    except BaseException as err:
        if osp.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError) and not isinstance(err, DiskWriteError):
            free = free_space(directory)
            code = errno_names.errorcode.get(err.errno, err.errno)
            raise DiskWriteError(
                err.errno,
                f'cannot write {path}: {err.strerror or err} ({code}); '
                f'{_mb(len(data))} needed, '
                + (f'{_mb(free)} free' if free is not None
                   else 'free space unknown')
                + f' in {directory} (the new file is written beside the one '
                'it replaces, which stays until the new one is complete)'
            ) from err
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
