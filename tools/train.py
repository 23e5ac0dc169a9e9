#!/usr/bin/env python
"""Train a LITv2 model: a detector (mmdet 3) or a segmentor (mmseg 1); the
task is read from the config. Same interface as mmdet's ``tools/train.py``.

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr]
        [--resume [CHECKPOINT]] [--cfg-options KEY=VALUE ...]
        [--allow-missing PATTERN ...] [--no-finite-loss-check]
        [--launcher {none,pytorch,slurm,mpi}]

Several processes: ``tools/dist_train.sh CONFIG NUM_PROCESSES [args]``.
Without a GPU the run is adapted: AMP becomes bf16 autocast on a CPU with
bf16 arithmetic (fp32 on others; ``--amp`` is refused there), gloo, BN for
SyncBN.
Checkpoints are read as data only and written atomically, random states are
saved in them (exact ``--resume``), and a NaN/inf loss stops the run
(litv2_openmmlab.engine.runner.add_reliability_hooks). ``load_from`` and
``--resume`` load the whole model strictly
(litv2_openmmlab.checkpoint.strict_load); a partial
``load_from`` (another head, a backbone-only file) needs ``--allow-missing``
or ``load_from_allow_missing`` in the config.
"""
import argparse
import logging
import os
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from litv2_openmmlab.checkpoint import (
    CheckpointError,
    allowed_missing_keys,
    use_strict_loading,
)
from litv2_openmmlab.engine.hooks import NonFiniteLossError
from litv2_openmmlab.engine.optim import CPUBF16Error, require_cpu_bf16
from litv2_openmmlab.engine.runner import (
    DatasetNamingRunner,
    DistributedError,
    adapt_to_device,
    add_reliability_hooks,
    close_distributed,
    detect_task,
    dist_timeout_s,
    distributed_failure,
    free_finished_run,
    init_distributed_without_gpu,
    setup_task,
    task_runners,
)
from litv2_openmmlab.model_config_check import (
    ModelConfigError,
    check_backbone_widths,
)


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
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    task = detect_task(cfg, args.config)
    setup_task(task)
    check_backbone_widths(cfg.get('model'))

    # work_dir: command line > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

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

    add_reliability_hooks(cfg, not args.no_finite_loss_check)
    adapt_to_device(cfg, args.launcher)
    init_distributed_without_gpu(cfg, args.launcher)
    if 'runner_type' in cfg:
        runner = task_runners(task).build(cfg)
    else:
        # data set faults are reported with the data set named
        runner = DatasetNamingRunner.from_cfg(cfg)
    use_strict_loading(runner, allowed_missing_keys(cfg, args.allow_missing))
    if args.launcher != 'none':
        print_log('distributed run: a process that dies or stops answering '
                  'stops the others after env_cfg.dist_cfg.timeout = '
                  f'{dist_timeout_s(cfg):g} s', logger='current')
    try:
        runner.train()
    except RuntimeError as err:
        message = distributed_failure(err, cfg)
        if message is None:
            raise
        raise DistributedError(message) from err
    close_distributed()
    return runner


if __name__ == '__main__':
    try:
        main()
    except (CheckpointError, NonFiniteLossError, ModelConfigError,
            DistributedError, CPUBF16Error) as err:
        sys.exit(f'{type(err).__name__}: {err}')  # one line, no traceback
    free_finished_run()
