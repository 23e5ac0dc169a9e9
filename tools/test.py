#!/usr/bin/env python
"""Test (and evaluate) a LITv2 model: a detector (mmdet 3; COCO box / mask AP)
or a segmentor (mmseg 1; mIoU); the task is read from the config. Same
interface as mmdet's / mmseg's ``tools/test.py``.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
        [--show] [--show-dir DIR] [--wait-time S] [--cfg-options ...]
        [--allow-missing PATTERN ...] [--launcher {none,pytorch,slurm,mpi}]

The run is ``LITv2Runner``'s (the configs' ``runner_type``; mmdet's and
mmseg's own ``tools/test.py`` build it too): the checkpoint is read as data
and loaded strictly (a key missing from it, a key the model lacks or a
tensor of another shape stops the tool before anything is evaluated, unless
``--allow-missing`` names it); weights that are not finite stop it too
(``FiniteWeightsHook``). This tool adds the command line and one-line
errors.

Several processes: ``tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES``.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import DictAction
from mmengine.registry import RUNNERS

from litv2.checkpoint import check_checkpoint_path
from litv2_openmmlab.apis.inference import load_config
from litv2_openmmlab.checkpoint import CheckpointError
from litv2_openmmlab.engine.hooks import NonFiniteWeightsError
from litv2_openmmlab.engine.runner import (
    DatasetError,
    free_finished_run,
    use_litv2_runner,
)
from litv2_openmmlab.model_config_check import ModelConfigError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a LITv2 detector or segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='detection: dump the predictions to this .pkl file; '
        'segmentation: save the predicted maps into this directory')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved (detection: '
        'under work_dir/timestamp/; segmentation: as given, every '
        'default_hooks.visualization.interval-th image, as mmseg does)')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, as key=value pairs merged into '
        'it; a list is given as key="[a,b]" or key=a,b (quotes needed, no '
        'white space)')
    parser.add_argument(
        '--allow-missing',
        nargs='+',
        metavar='PATTERN',
        help='checkpoint keys (fnmatch patterns, e.g. "bbox_head.*") that '
        'may be missing from the file, of another shape, or absent from the '
        'model; they keep their initial values (default: none, the whole '
        'model is loaded strictly)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg, args, task):
    """Turn on the config's visualization hook for --show / --show-dir."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise KeyError(f'--show/--show-dir: {args.config} has no '
                       'default_hooks.visualization')
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        if task == 'mmdet':
            hook['test_out_dir'] = args.show_dir
        else:
            cfg.visualizer['save_dir'] = args.show_dir


def main(argv=None):
    args = parse_args(argv)
    check_checkpoint_path(args.checkpoint)
    cfg, task = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.allow_missing:
        cfg.load_from_allow_missing = list(
            cfg.get('load_from_allow_missing') or []) + args.allow_missing

    if args.show or args.show_dir:
        trigger_visualization_hook(cfg, args, task)
    if args.out is not None:
        if task == 'mmdet':
            if not args.out.endswith(('.pkl', '.pickle')):
                raise ValueError(f'--out {args.out!r}: the detection results '
                                 'are dumped to a .pkl / .pickle file')
        else:
            cfg.test_evaluator['output_dir'] = args.out
            cfg.test_evaluator['keep_results'] = True

    use_litv2_runner(cfg)
    runner = RUNNERS.build(cfg)
    if args.out is not None and task == 'mmdet':
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))
    return runner.test()


if __name__ == '__main__':
    try:
        main()
    except (CheckpointError, ModelConfigError, NonFiniteWeightsError,
            DatasetError, FileNotFoundError, IsADirectoryError) as err:
        sys.exit(f'{type(err).__name__}: {err}')  # one line, no traceback
    free_finished_run()
