"""One run per work directory.

Two trainings writing into one work directory overwrite each other's
checkpoints and ``last_checkpoint``, and the second one's start-up used to
remove the first one's checkpoint while it was being written.
:func:`lock_work_dir` takes an exclusive ``fcntl.flock`` on
``WORK_DIR/.litv2_run.lock`` (the file holds the owner's pid and host). The
kernel drops the lock when the process ends, however it ends (a SIGKILL
included), so a dead run never leaves it stuck. Only the main process of a
run takes it (global rank 0, read from the launcher's environment or from
the process group): the processes of one multi-process run share their work
directory.

``tools/train.py`` takes the lock before it builds anything;
``AtomicCheckpointHook`` takes it (the same lock, once per process) before it
removes the temporary files that a dead run left behind, so the temporary
files of a live run are never touched.
"""
import datetime
import fcntl
import os
import os.path as osp
import socket
from typing import Dict

LOCK_NAME = '.litv2_run.lock'

_held: Dict[str, int] = {}  # work dir (absolute) -> fd of its locked file


class WorkDirBusyError(RuntimeError):
    """The work directory is owned by another live run."""


def global_rank() -> int:
    """This process's global rank: from the process group if there is one,
    else from the launcher's environment (torchrun, slurm, MPI); 0 for a
    single process."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    for var in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK',
                'PMI_RANK'):
        if os.environ.get(var, '').isdigit():
            return int(os.environ[var])
    return 0


def holds_work_dir(work_dir) -> bool:
    """Whether this process holds the lock of ``work_dir``."""
    return osp.abspath(str(work_dir)) in _held


def lock_work_dir(work_dir) -> bool:
    """Make this run the owner of ``work_dir`` (created if missing).

    Returns True if the lock was taken now, False if this process held it
    already or is not the run's main process (which takes no lock). Raises
    :class:`WorkDirBusyError`, naming the directory and the owner, if another
    live process holds it."""
    path = osp.abspath(str(work_dir))
    if path in _held or global_rank() != 0:
        return False
    os.makedirs(path, exist_ok=True)
    lock_file = osp.join(path, LOCK_NAME)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        owner = os.pread(fd, 512, 0).decode(errors='replace').strip()
        os.close(fd)
        raise WorkDirBusyError(
            f'work directory {path} is in use by another run '
            f'({owner or "owner unknown"}; lock {lock_file}): wait for that '
            'run to end, or give this one another --work-dir') from None
    now = datetime.datetime.now().isoformat(timespec='seconds')
    os.ftruncate(fd, 0)
    os.pwrite(fd, f'pid {os.getpid()} on host {socket.gethostname()}, '
              f'since {now}\n'.encode(), 0)
    _held[path] = fd
    return True


def unlock_work_dir(work_dir) -> None:
    """Release the lock of ``work_dir`` if this process holds it."""
    fd = _held.pop(osp.abspath(str(work_dir)), None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
