"""Starting and ending the process group of a multi-process run without a
GPU (gloo), and freeing a finished run before the interpreter's teardown.
What a process says when another one is gone is in ``dist_failure.py``."""
import atexit
import datetime
import gc
import os
import subprocess

import torch
from mmengine.config import Config


def init_distributed_without_gpu(cfg: Config, launcher: str) -> None:
    """Start the gloo process group for a multi-process run without CUDA.

    mmengine's own ``init_dist`` binds every process to a CUDA device first,
    which fails without a GPU; once the group exists, the Runner uses it.
    ``--launcher pytorch`` (torchrun, ``tools/dist_*.sh``) and ``slurm``
    (``srun``, ``tools/slurm_*.sh``) are supported here; MPI's set-up in
    mmengine assumes GPUs.
    """
    if (launcher == 'none' or torch.cuda.is_available()
            or torch.distributed.is_initialized()):
        return
    if launcher == 'slurm':
        slurm_to_torch_env()
    elif launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {launcher} needs GPUs (mmengine binds each process '
            'to a CUDA device); without a GPU, start several processes with '
            '--launcher pytorch (tools/dist_train.sh, tools/dist_test.sh) '
            'or slurm (tools/slurm_train.sh, tools/slurm_test.sh)')
    for var in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        if var not in os.environ:
            raise RuntimeError(
                f'--launcher pytorch: environment variable {var} is not set; '
                'start the tool with torchrun (tools/dist_train.sh)')
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
    dist_cfg.pop('backend', None)
    if dist_cfg.get('timeout') is not None:
        dist_cfg['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    torch.distributed.init_process_group(backend='gloo', **dist_cfg)
    # tools that do not call free_finished_run themselves (mmdet's and
    # mmseg's) get it at exit, while the interpreter is still whole
    atexit.register(free_finished_run)


def slurm_to_torch_env() -> None:
    """Set torch's rendezvous variables from the ones ``srun`` gives each
    task: rank and world size from ``SLURM_PROCID`` / ``SLURM_NTASKS``,
    the first host of ``SLURM_NODELIST`` (``scontrol show hostnames``) as
    the master, ``MASTER_PORT`` if set, else 29500 (mmengine's choices)."""
    for var in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'):
        if var not in os.environ:
            raise RuntimeError(
                f'--launcher slurm: environment variable {var} is not set; '
                'start the tool with srun (tools/slurm_train.sh)')
    hosts = subprocess.run(
        ['scontrol', 'show', 'hostnames', os.environ['SLURM_NODELIST']],
        capture_output=True, text=True, check=True).stdout.split()
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ['MASTER_ADDR'] = hosts[0]
    os.environ.setdefault('MASTER_PORT', '29500')


def close_distributed() -> None:
    """End a finished multi-process run cleanly: wait for every process, then
    shut the process group down. Left to the interpreter's teardown, a gloo
    group can abort a process that has finished its work ("terminate called
    without an active exception"). The tool then frees the runner with
    :func:`free_finished_run`."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def free_finished_run() -> None:
    """Free a finished runner while the interpreter is still whole.

    DDP's reducer keeps its own reference to the gloo process group, so the
    group outlives ``destroy_process_group`` as long as the runner does; the
    runner sits in reference cycles (hooks point back at it), and freed only
    by the interpreter's teardown, gloo's worker threads abort the process
    (SIGABRT) about one run in eight, after the work is done and saved.
    Measured with a DDP model left in a cycle: 4 of 30 two-process runs
    aborted; collected before exit: 0 of 40."""
    gc.collect()
