#!/usr/bin/env python
"""Params and FLOPs of a LITv2 detector or segmentor (or of its backbone), as
in the paper's tables.

    python tools/get_flops.py CONFIG [--shape H [W]] [--backbone-only]
        [--per-stage] [--json FILE] [--cfg-options ...]

As mmdet's and mmseg's own ``get_flops`` tools: one image of the given size
goes through the model's data preprocessor, then ``mmengine.analysis`` traces
``model(inputs, data_samples, mode='tensor')`` (backbone, neck and heads,
without post-processing). Defaults: 1280x800 (H=800, W=1280) for detection,
512x512 for segmentation, the paper's sizes. One FLOP is one multiply-add.

Two figures are printed (see ``litv2/flops.py``): ``FLOPs`` is comparable to
the paper's tables, whose counter did not see DTM's deformable convolutions;
``FLOPs (complete)`` adds them.
"""
import argparse
import json
import sys
from functools import partial

import torch
from mmengine.analysis import parameter_count
from mmengine.config import DictAction

from litv2.flops import backbone_stages, per_stage
from litv2_openmmlab.apis import (
    PAPER_SHAPES,
    build_inference_model,
    load_config,
    synthetic_batch,
)
from litv2_openmmlab.flops import count_flops
from litv2_openmmlab.model_config_check import ModelConfigError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Params and FLOPs of a LITv2 detector / segmentor')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape', type=int, nargs='+', metavar='SIZE',
        help='network input H W (one value: square); default 800 1280 for '
        'detection, 512 512 for segmentation')
    parser.add_argument('--backbone-only', action='store_true',
                        help='count the backbone alone')
    parser.add_argument('--per-stage', action='store_true',
                        help='also print the FLOPs and params of each part '
                        '(backbone stages, neck, heads)')
    parser.add_argument('--json', help='also write the figures to this file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, as key=value pairs')
    args = parser.parse_args(argv)
    if args.shape is not None:
        if len(args.shape) not in (1, 2):
            parser.error(f'--shape takes H W or one size, got {args.shape}')
        if min(args.shape) < 1:
            parser.error(f'--shape must be positive, got {args.shape}')
    return args


def input_shape(args, task):
    if args.shape is None:
        return PAPER_SHAPES[task]
    return (args.shape[0], args.shape[-1])


def parts(model, prefix):
    """Module names for ``--per-stage``: the backbone's parts, then the
    model's other top-level modules (neck, heads)."""
    backbone = model.backbone if prefix else model
    names = backbone_stages(prefix, len(backbone.layers))
    if prefix:
        names += [n for n, _ in model.named_children()
                  if n not in ('backbone', 'data_preprocessor')]
    return names


def main(argv=None):
    args = parse_args(argv)
    cfg, task = load_config(args.config, args.cfg_options)
    model = build_inference_model(cfg, task)
    height, width = input_shape(args, task)
    data = model.data_preprocessor(synthetic_batch(task, height, width),
                                   False)
    inputs = data['inputs']
    if args.backbone_only:
        target, prefix = model.backbone, ''
    else:
        target, prefix = model, 'backbone'
        model.forward = partial(model.forward,
                                data_samples=data['data_samples'],
                                mode='tensor')
    with torch.no_grad():
        count = count_flops(target, (inputs, ))

    shape = tuple(inputs.shape[1:])
    what = 'backbone of ' if args.backbone_only else ''
    print(f'{what}{args.config}, input {shape[1]}x{shape[2]} (H x W, '
          f'padded by the data preprocessor from {height}x{width})')
    if args.per_stage:
        params = parameter_count(target)
        print(f'{"part":<24}{"params (M)":>12}{"FLOPs (G)":>12}'
              f'{"complete (G)":>14}')
        for name, paper, complete in per_stage(count, parts(target, prefix)):
            p = params.get(name, 0) if name != 'other' else None
            p = f'{p / 1e6:.2f}' if p is not None else ''
            print(f'{name:<24}{p:>12}{paper / 1e9:>12.2f}'
                  f'{complete / 1e9:>14.2f}')
    print(f'Params: {count.params / 1e6:.2f} M')
    print(f'FLOPs: {count.paper / 1e9:.2f} G  (comparable to the paper: '
          "DTM's deformable convs not counted, as by the paper's counter)")
    print(f'FLOPs (complete): {count.complete / 1e9:.2f} G  (with the '
          f"deformable convs of DTM, {sum(count.dtm.values()) / 1e9:.2f} G)")
    if count.unsupported:
        print('not counted (no FLOP rule): ' + ', '.join(
            f'{op} x{n}' for op, n in sorted(count.unsupported.items())))
    result = dict(config=args.config, task=task,
                  backbone_only=args.backbone_only,
                  input_shape=[shape[1], shape[2]], params=count.params,
                  flops=count.paper, flops_complete=count.complete,
                  dtm_flops=count.dtm)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    try:
        main()
    except ModelConfigError as err:
        sys.exit(f'{type(err).__name__}: {err}')  # one line, no traceback
