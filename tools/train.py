"""Train a LITv2 model: a detector (mmdet 3) or a segmentor (mmseg 1); the
task is read from the config. Same interface as mmdet's ``tools/train.py``.

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr]
        [--resume [CHECKPOINT]] [--cfg-options KEY=VALUE ...]
        [--allow-missing PATTERN ...] [--no-finite-loss-check]
        [--launcher {none,pytorch,slurm,mpi}]

Several processes: ``tools/dist_train.sh CONFIG NUM_PROCESSES [args]``.
The run is ``LITv2Runner``'s (``litv2_openmmlab.engine.runner``; the
configs' ``runner_type``), which mmdet's and mmseg's own ``tools/train.py``
build too: without a GPU the run is adapted (AMP becomes bf16 autocast on a
CPU with bf16 arithmetic, fp32 on others; gloo; BN for SyncBN);
checkpoints are read as data only and written atomically, random states are
saved in them (exact ``--resume``), a NaN/inf loss stops the run;
``load_from`` and ``--resume`` load the whole model strictly (a partial
``load_from``, another head or a backbone-only file, needs
``--allow-missing`` or ``load_from_allow_missing`` in the config); one run
per work directory; SIGTERM and SIGINT end the run with one line naming the
last checkpoint. This tool adds the command line and one-line errors.
"""
import argparse
import logging
import os
import os.path as osp
import sys

import torch
from mmengine.config import DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS

from litv2_openmmlab.apis.inference import load_config
from litv2_openmmlab.checkpoint import CheckpointError
from litv2_openmmlab.checkpoint.atomic_write import DiskWriteError
from litv2_openmmlab.engine.hooks import NonFiniteLossError
from litv2_openmmlab.engine.hooks.work_dir_lock import (
    WorkDirBusyError,
    global_rank,
    lock_work_dir,
    unlock_work_dir,
)
from litv2_openmmlab.engine.optim import CPUBF16Error, require_cpu_bf16
from litv2_openmmlab.engine.runner import (
    DatasetError,
    DistributedError,
    TrainingInterrupted,
    free_finished_run,
    use_litv2_runner,
)
from litv2_openmmlab.model_config_check import ModelConfigError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a LITv2 detector (mmdet) or segmentor (mmseg)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size over '
        'auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or without a path from the latest '
        'checkpoint in the work directory')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, as key=value pairs merged into '
        'it, e.g. model.backbone.init_cfg.checkpoint=litv2_s.pth; a list is '
        'given as key="[a,b]" or key=a,b (quotes needed, no white space)')
    parser.add_argument(
        '--allow-missing',
        nargs='+',
        metavar='PATTERN',
        help='load_from keys (fnmatch patterns, e.g. "bbox_head.*") that may '
        'be missing from the file, of another shape, or absent from the '
        'model: a deliberate partial load (another head, a backbone-only '
        'file); default: none, load_from loads the whole model strictly')
    parser.add_argument(
        '--no-finite-loss-check',
        action='store_true',
        help='do not stop training at a NaN/inf loss (FiniteLossHook)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2) or
    # --local_rank; torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg, _ = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher

    # work_dir: command line > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    # one run per work directory: stop before anything is built
    locked = lock_work_dir(cfg.work_dir)
    try:
        return _train(args, cfg)
    finally:
        if locked:
            unlock_work_dir(cfg.work_dir)


def _train(args, cfg):

    if args.amp:
        if not torch.cuda.is_available():
            require_cpu_bf16('--amp')  # one line, before anything is built
        if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
            print_log(f'--amp: {args.config} already trains with AMP',
                      logger='current', level=logging.WARNING)
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        scale = cfg.get('auto_scale_lr')
        if not scale or 'enable' not in scale \
                or 'base_batch_size' not in scale:
            raise KeyError(
                f'--auto-scale-lr: {args.config} has no auto_scale_lr = '
                'dict(enable=..., base_batch_size=...)')
        cfg.auto_scale_lr.enable = True

    # an explicit checkpoint wins over the latest one of the work_dir
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.allow_missing:
        cfg.load_from_allow_missing = list(
            cfg.get('load_from_allow_missing') or []) + args.allow_missing
    if args.no_finite_loss_check:
        cfg.finite_loss_check = False

    use_litv2_runner(cfg)
    runner = RUNNERS.build(cfg)
    runner.train()
    return runner


if __name__ == '__main__':
    try:
        main()
    except (CheckpointError, NonFiniteLossError, ModelConfigError,
            DistributedError, CPUBF16Error, WorkDirBusyError, DatasetError,
            DiskWriteError) as err:
        sys.exit(f'{type(err).__name__}: {err}')  # one line, no traceback
    except TrainingInterrupted as err:
        if global_rank() == 0:
            print(f'TrainingInterrupted: {err}', file=sys.stderr, flush=True)
        sys.exit(128 + err.signum)
    free_finished_run()
