#!/usr/bin/env python
"""Make the quickstart's toy data set: synthetic shapes on textured
backgrounds, COCO-format instance segmentation under ``<out>/coco`` and
ADE20K-style semantic segmentation under ``<out>/seg``; same seed, same
files, byte for byte (the generator and the format are described in
litv2_openmmlab/datasets/toy_shapes.py).

Usage::

    python tools/make_toy_dataset.py [--out data/toy] [--seed 0]
        [--num-train N] [--num-val N] [--if-missing]
"""
import argparse
import sys

from litv2_openmmlab.datasets.toy_shapes import (
    DET_SPLITS,
    generate,
    is_complete,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/toy',
                        help='output folder (default: data/toy)')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed (default: 0)')
    parser.add_argument('--num-train', type=int, default=DET_SPLITS[0][1],
                        help='detection training images (default: '
                        f'{DET_SPLITS[0][1]}); segmentation uses 2/3 of it')
    parser.add_argument('--num-val', type=int, default=DET_SPLITS[1][1],
                        help='validation images of each part (default: '
                        f'{DET_SPLITS[1][1]})')
    parser.add_argument('--if-missing', action='store_true',
                        help='do nothing if OUT already holds this data set')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.seed < 0 or args.num_train < 3 or args.num_val < 1:
        print('make_toy_dataset: --seed must be >= 0, --num-train >= 3 and '
              '--num-val >= 1', file=sys.stderr)
        return 2
    det = (('train', args.num_train), ('val', args.num_val))
    seg = (('training', args.num_train * 2 // 3),
           ('validation', args.num_val))
    if args.if_missing and is_complete(args.out, args.seed, det, seg):
        print(f'toy data set already in {args.out}')
        return 0
    summary = generate(args.out, args.seed, det, seg)
    parts = ', '.join(f'{k}: {v}' for k, v in summary.items() if '/' in k)
    print(f'toy data set (seed {args.seed}) written to {args.out}: {parts}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
