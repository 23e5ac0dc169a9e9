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
One run per work directory (a lock, released when the process ends); SIGTERM
and SIGINT end the run with one line naming the last checkpoint.
"""
import argparse
import logging
import os
import os.path as osp
import signal
import sys

import torch
from mmengine.config import DictAction
from mmengine.logging import print_log

from litv2_openmmlab.checkpoint import (
    CheckpointError,
    allowed_missing_keys,
    use_strict_loading,
)
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
    last_checkpoint_of,
    setup_task,
    task_runners,
)
from litv2_openmmlab.model_config_check import (
    ModelConfigError,
    check_backbone_widths,
    read_config,
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


class TrainingInterrupted(BaseException):
    """SIGTERM / SIGINT during training (a BaseException, as
    KeyboardInterrupt: no ``except Exception`` swallows it)."""

    def __init__(self, signum: int, message: str = ''):
        super().__init__(message or signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum, frame):
    raise TrainingInterrupted(signum)


def _stop_on_signals():
    """SIGTERM / SIGINT raise :class:`TrainingInterrupted`; returns the
    previous handlers (none outside the main thread)."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _raise_interrupted)
            for sig in (signal.SIGTERM, signal.SIGINT)}


def _interrupted_message(signum, runner, work_dir) -> str:
    where = (f' at iteration {runner.iter + 1}' if runner is not None
             else ' before training started')
    last = last_checkpoint_of(work_dir)
    return (f'{signal.Signals(signum).name}: training stopped{where}; '
            + (f'last checkpoint: {last}; continue with --resume'
               if last else 'no checkpoint was saved'))


def main(argv=None):
    handlers = _stop_on_signals()
    run = {}  # 'work_dir', 'runner': as far as _main got
    try:
        return _main(argv, run)
    except TrainingInterrupted as err:
        raise TrainingInterrupted(err.signum, _interrupted_message(
            err.signum, run.get('runner'), run.get('work_dir'))) from None
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if run.get('work_dir'):
            unlock_work_dir(run['work_dir'])


def _main(argv, run):
    args = parse_args(argv)
    cfg = read_config(args.config)
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
    # one run per work directory: stop now if another run owns it
    lock_work_dir(cfg.work_dir)
    run['work_dir'] = cfg.work_dir

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
        if global_rank() == 0 and last_checkpoint_of(cfg.work_dir) is None:
            print_log(f'--resume: no checkpoint to resume from in '
                      f'{osp.abspath(cfg.work_dir)} (no last_checkpoint '
                      'file): training starts at iteration 0',
                      logger='current', level=logging.WARNING)
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
    run['runner'] = runner
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
            DistributedError, CPUBF16Error, WorkDirBusyError, DatasetError,
            DiskWriteError) as err:
        sys.exit(f'{type(err).__name__}: {err}')  # one line, no traceback
    except TrainingInterrupted as err:
        if global_rank() == 0:
            print(f'TrainingInterrupted: {err}', file=sys.stderr, flush=True)
        sys.exit(128 + err.signum)
    free_finished_run()
