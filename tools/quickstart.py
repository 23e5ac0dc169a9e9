#!/usr/bin/env python
"""Quickstart (``make demo``): train a small LITv2 detector from scratch on the
toy shapes data set on CPU and evaluate the checkpoint it wrote.

Steps, each timed:

1. ``tools/make_toy_dataset.py`` writes ``data/toy`` unless it is there;
2. ``tools/train.py configs/quickstart/retinanet_litv2_toy.py`` trains;
3. ``tools/test.py`` evaluates the last checkpoint on the toy validation
   split (COCO box AP; with the Mask R-CNN config also mask AP; with the
   Semantic FPN config mIoU);

then the metrics are printed. The exit status is 1 if the headline metric
(box mAP, or mIoU for segmentation) is below ``--min-score``.

    python tools/quickstart.py [--config CONFIG] [--work-dir DIR]
        [--data DIR] [--min-score S] [--amp] [--cfg-options KEY=VALUE ...]

``--amp`` trains under mixed precision (bf16 autocast on a CPU with bf16
arithmetic, see tools/train.py); the test runs in fp32 either way.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = 'configs/quickstart/retinanet_litv2_toy.py'
# the headline metric of each kind of config, and its pass mark by default
HEADLINES = {
    'coco/bbox_mAP': ('box mAP', 0.3),
    'mIoU': ('mIoU', 50.0),
}
SHOWN = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75',
         'coco/segm_mAP', 'coco/segm_mAP_50', 'coco/segm_mAP_75', 'aAcc',
         'mIoU', 'mAcc')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train and evaluate a small LITv2 model on the toy data '
        'set, on CPU (make demo)')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help=f'quickstart config (default: {DEFAULT_CONFIG})')
    parser.add_argument('--work-dir', default=None,
                        help='default: work_dirs/quickstart/<config name>')
    parser.add_argument('--data', default='data/toy',
                        help='toy data set folder, made if missing; the '
                        'quickstart configs read data/toy (default)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the toy data set (default: 0)')
    parser.add_argument('--min-score', type=float, default=None,
                        help='fail below this box mAP (default 0.3) or mIoU '
                        '(default 50)')
    parser.add_argument('--amp', action='store_true',
                        help='train with mixed precision (tools/train.py '
                        '--amp)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='passed on to tools/train.py and tools/test.py')
    return parser.parse_args(argv)


def run(cmd, what):
    print(f'\n[quickstart] {what}: {" ".join(cmd)}', flush=True)
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=REPO)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f'[quickstart] {what} failed (exit status '
                         f'{result.returncode}) after {seconds:.0f} s')
    return seconds


def test_metrics(work_dir, since):
    """The metrics that tools/test.py's LoggerHook wrote to
    ``<work_dir>/<timestamp>/<timestamp>.json`` (the newest one)."""
    logs = [p for p in glob.glob(osp.join(work_dir, '*', '*.json'))
            if osp.getmtime(p) >= since
            and osp.basename(p)[:-5] == osp.basename(osp.dirname(p))]
    if not logs:
        raise SystemExit(f'[quickstart] no metrics file of the test run in '
                         f'{work_dir}/<timestamp>/')
    with open(max(logs, key=osp.getmtime)) as f:
        return json.load(f)


def main(argv=None):
    args = parse_args(argv)
    config = args.config
    if not osp.isfile(osp.join(REPO, config)):
        raise SystemExit(f'[quickstart] config {config!r} not found')
    name = osp.splitext(osp.basename(config))[0]
    work_dir = args.work_dir or osp.join('work_dirs', 'quickstart', name)
    work_dir_abs = osp.join(REPO, work_dir)
    py = sys.executable
    # Idle OpenMP threads sleep instead of spinning: on a small machine
    # shared with other work, spinning threads slow everyone down several
    # times.
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    options = ['--cfg-options', *args.cfg_options] if args.cfg_options else []

    start = time.perf_counter()
    times = {}
    times['data'] = run([
        py, 'tools/make_toy_dataset.py', '--out', args.data, '--seed',
        str(args.seed), '--if-missing'
    ], 'toy data set')
    # a previous run's checkpoints must not be mistaken for this one's
    last = osp.join(work_dir_abs, 'last_checkpoint')
    if osp.exists(last):
        os.remove(last)
    times['train'] = run(
        [py, 'tools/train.py', config, '--work-dir', work_dir, *options]
        + (['--amp'] if args.amp else []),
        'train')
    if not osp.isfile(last):
        raise SystemExit(f'[quickstart] training wrote no checkpoint '
                         f'({last} is missing)')
    with open(last) as f:
        checkpoint = f.read().strip()
    test_start = time.time()
    times['test'] = run([
        py, 'tools/test.py', config, checkpoint, '--work-dir', work_dir,
        *options
    ], 'test')
    total = time.perf_counter() - start
    metrics = test_metrics(work_dir_abs, test_start - 1)

    print('\n[quickstart] ' + '=' * 60)
    print(f'[quickstart] {config} on {args.data} (CPU threads: '
          f'{os.cpu_count()})')
    print(f'[quickstart] checkpoint: {checkpoint}')
    for key in SHOWN:
        if key in metrics:
            print(f'[quickstart]   {key:18s} {metrics[key]:.3f}')
    print('[quickstart] wall time: ' + ', '.join(
        f'{k} {v:.0f} s' for k, v in times.items()) + f'; total {total:.0f} s')
    for key, (label, default) in HEADLINES.items():
        if key in metrics:
            floor = default if args.min_score is None else args.min_score
            if metrics[key] < floor:
                print(f'[quickstart] FAILED: {label} {metrics[key]:.3f} < '
                      f'{floor}')
                return 1
            print(f'[quickstart] OK: {label} {metrics[key]:.3f} >= {floor}')
            return 0
    print(f'[quickstart] FAILED: none of {sorted(HEADLINES)} in the test '
          f'metrics {sorted(metrics)}')
    return 1


if __name__ == '__main__':
    sys.exit(main())
