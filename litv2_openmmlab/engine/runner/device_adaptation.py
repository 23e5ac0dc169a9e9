"""The run-time changes that let a config written for GPUs (AMP, NCCL,
SyncBN) run on a machine without one, with one process or several
(``tools/dist_train.sh CONFIG 2``)."""
import os

import torch
from mmengine.config import Config

from ..optim.amp_support import cpu_bf16_support
from .rank0_log import info_rank0, warn_rank0

# cuBLAS is deterministic only with a fixed workspace; PyTorch refuses its
# matmuls under torch.use_deterministic_algorithms without one of these.
CUBLAS_DETERMINISTIC_WORKSPACE = ':4096:8'


def _sync_bn_to_bn(node) -> int:
    """Replace ``type='SyncBN'`` norm configs by ``'BN'`` in place; count."""
    count = 0
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
            count += 1
        for value in node.values():
            count += _sync_bn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += _sync_bn_to_bn(value)
    return count


def adapt_to_device(cfg: Config, launcher: str) -> None:
    """Without CUDA, change in place what a GPU config cannot do on a CPU:

    * ``AmpOptimWrapper`` (mmengine refuses it without a GPU) becomes
      ``CPUAutocastOptimWrapper`` (bf16 autocast) on a CPU with native bf16
      arithmetic, ``OptimWrapper`` (fp32) on others;
    * with a launcher: the process group uses gloo instead of NCCL, DDP gets
      no ``device_ids``, and SyncBN (CUDA only in torch) becomes BN.

    Each change is logged. With CUDA, only ``randomness.deterministic``
    needs something: ``CUBLAS_WORKSPACE_CONFIG`` (unless set already),
    before the first matmul of the process.
    """
    if torch.cuda.is_available():
        randomness = cfg.get('randomness') or {}
        if (randomness.get('deterministic')
                and 'CUBLAS_WORKSPACE_CONFIG' not in os.environ):
            os.environ['CUBLAS_WORKSPACE_CONFIG'] = (
                CUBLAS_DETERMINISTIC_WORKSPACE)
            info_rank0('randomness.deterministic on CUDA: '
                       'CUBLAS_WORKSPACE_CONFIG='
                       f'{CUBLAS_DETERMINISTIC_WORKSPACE} (cuBLAS is '
                       'deterministic only with a fixed workspace)')
        return
    optim = cfg.get('optim_wrapper')
    if optim is not None and optim.get('type') == 'AmpOptimWrapper':
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            optim.pop(key, None)
        bf16, found = cpu_bf16_support()
        if bf16:
            optim['type'] = 'CPUAutocastOptimWrapper'
            optim['dtype'] = 'bfloat16'
            warn_rank0(f'no GPU: AmpOptimWrapper replaced by '
                       f'CPUAutocastOptimWrapper (bf16 autocast; {found})')
        else:
            optim['type'] = 'OptimWrapper'
            warn_rank0(f'no GPU: AmpOptimWrapper replaced by OptimWrapper '
                       f'(fp32; no bf16 arithmetic: {found})')
    if launcher == 'none':
        return  # mmengine's Runner reverts SyncBN itself when not distributed
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') != 'gloo':
        warn_rank0('no GPU: process group backend '
                   f"{dist_cfg.get('backend')!r} replaced by 'gloo'")
        dist_cfg['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel', device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    else:
        wrapper['device_ids'] = None
    if _sync_bn_to_bn(cfg.get('model')):
        warn_rank0('no GPU: SyncBN replaced by BN (torch runs SyncBN on GPUs '
                   'only)')
