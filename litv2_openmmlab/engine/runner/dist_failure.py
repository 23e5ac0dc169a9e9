"""What a process of a multi-process (multi-machine) run says when another
one is gone.

Measured on this project's machine (two nodes on localhost, gloo): after the
other node is killed with SIGKILL, the survivor's next collective operation
(DDP's gradient all-reduce) does not fail at once; it waits for
``env_cfg.dist_cfg.timeout`` seconds (torch's default when unset: 30 min for
gloo, 10 min for NCCL) and raises gloo's ``RuntimeError: ... Timed out
waiting 20000ms for send operation to complete`` deep inside the backward
pass. :func:`distributed_failure` turns such an error into one line saying
what happened, what bounded the wait, and how to continue.
"""
import datetime
import os.path as osp
import re
from typing import Optional

import torch

# what gloo says when a peer is gone or silent (NCCL's watchdog ends the
# process itself, with its own message)
_PEER_GONE = re.compile(
    r'timed out|connection closed by peer|connection reset|broken pipe',
    re.I)


class DistributedError(RuntimeError):
    """A collective operation failed: another process of the run died or
    stopped answering."""


def dist_timeout_s(cfg) -> float:
    """The timeout of every collective operation of the run, in seconds:
    ``env_cfg.dist_cfg.timeout``, else torch's default for the backend."""
    dist_cfg = (cfg.get('env_cfg') or {}).get('dist_cfg') or {}
    timeout = dist_cfg.get('timeout')
    if timeout is None:
        from torch.distributed import constants
        default = (getattr(constants, 'default_pg_nccl_timeout', None)
                   if dist_cfg.get('backend') == 'nccl' else None)
        default = default or constants.default_pg_timeout
        return default.total_seconds()
    if isinstance(timeout, datetime.timedelta):
        return timeout.total_seconds()
    return float(timeout)


def last_checkpoint_of(work_dir) -> Optional[str]:
    """The checkpoint that ``WORK_DIR/last_checkpoint`` names, or None."""
    if work_dir is None:
        return None
    path = osp.join(str(work_dir), 'last_checkpoint')
    if osp.isfile(path):
        with open(path) as f:
            return f.read().strip() or None
    return None


def distributed_failure(err: BaseException, cfg) -> Optional[str]:
    """A one-line description of ``err`` if it is a failed collective
    operation of an initialised process group, else None."""
    if not (torch.distributed.is_available()
            and torch.distributed.is_initialized()):
        return None
    if not isinstance(err, RuntimeError):
        return None
    dist_error = getattr(torch.distributed, 'DistError', ())
    text = str(err)
    if not (isinstance(err, dist_error)
            or ('gloo' in text and _PEER_GONE.search(text))):
        return None
    first = next((line.strip() for line in text.splitlines()
                  if line.strip()), type(err).__name__)
    rank = torch.distributed.get_rank()
    world = torch.distributed.get_world_size()
    last = last_checkpoint_of(cfg.get('work_dir', '.'))
    return (f'rank {rank} of {world}: a collective operation failed '
            f'({first}); another process of the run has died or stopped '
            f'answering (each operation waits at most '
            f'env_cfg.dist_cfg.timeout = {dist_timeout_s(cfg):g} s). '
            + (f'Last checkpoint: {last}; ' if last else 'No checkpoint yet; ')
            + 'start every node again with --resume.')
