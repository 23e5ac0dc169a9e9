#!/usr/bin/env python
"""Export a LITv2 ImageNet classifier or the LITv2 backbone of a detection /
segmentation config to ONNX, and optionally check it with onnxruntime.

    python tools/export_onnx.py MODEL_OR_CONFIG [--checkpoint FILE]
        [--shape H [W]] [--batch-size N] [--opset 17] [--output FILE]
        [--check] [--tolerance 1e-4] [--cfg-options ...]

``MODEL_OR_CONFIG`` is a timm model name (``litv2_s``, ``litv2_m``,
``litv2_b``, ``litv2_b_384``: the whole classifier, output ``logits``) or an
mmdet / mmseg config file (its backbone, outputs ``stage0``.. as NCHW maps).
Weights: ``--checkpoint`` (a reference or timm ImageNet file for a
classifier; a detection, segmentation or ImageNet file for a backbone),
otherwise random: nothing is downloaded.

The graph uses standard ONNX ops only (DTM's deformable conv is
``GridSample`` + ``Conv``, so opset >= 16), via torch's TorchScript exporter
(``dynamo=False``; the dynamo exporter needs onnxscript). The batch axis is
dynamic; the spatial size is fixed at export (``--shape``; defaults: the
classifier's input size, 800x1280 for detection, 512x512 for segmentation),
because the padding that HiLo and the patch embedding apply depends on it.

``--check`` runs the file with onnxruntime (CPU) on a random batch and
compares every output with PyTorch's: the largest difference must be below
``--tolerance`` times the output's largest magnitude (absolute below 1);
the command fails otherwise.
"""
import argparse
import os.path as osp
import warnings

import torch
from mmengine.config import DictAction
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope

MIN_OPSET = 16  # GridSample


def is_config(target: str) -> bool:
    return target.endswith('.py')


def build_classifier(name: str, checkpoint=None):
    import timm

    import litv2.timm_models  # noqa: F401  (registers the models)
    names = timm.list_models('litv2*')
    if name not in names:
        raise ValueError(f'{name!r} is neither a config file (.py) nor one of '
                         f'the LITv2 timm models {names}')
    kwargs = {}
    if checkpoint is not None:
        kwargs = dict(pretrained=True,
                      pretrained_cfg_overlay=dict(file=checkpoint))
    model = timm.create_model(name, **kwargs)
    size = tuple(model.pretrained_cfg['input_size'][1:])
    return model, size, ['logits']


def build_backbone(config: str, checkpoint=None, cfg_options=None):
    from importlib import import_module

    from litv2_openmmlab.apis import PAPER_SHAPES, load_config
    cfg, task = load_config(config, cfg_options)
    backbone_cfg = cfg.model.get('backbone')
    if backbone_cfg is None or backbone_cfg.get('type') != 'LITv2':
        raise ValueError(f'{config}: model.backbone is not a LITv2 backbone '
                         f'(type {None if backbone_cfg is None else backbone_cfg.get("type")!r})')  # noqa: E501
    backbone_cfg = dict(backbone_cfg, init_cfg=None)  # no download
    registry = import_module(f'{task}.registry').MODELS
    with DefaultScope.overwrite_default_scope(task):
        backbone = revert_sync_batchnorm(registry.build(backbone_cfg))
    if checkpoint is not None:
        backbone.load_pretrained(checkpoint)
    names = [f'stage{i}' for i in backbone.out_indices]
    return backbone, PAPER_SHAPES[task], names


def export(model, images, output, output_names, opset):
    """Export ``model(images)`` (eval mode) to ``output``."""
    if opset < MIN_OPSET:
        raise ValueError(f'--opset {opset}: DTM needs GridSample, opset >= '
                         f'{MIN_OPSET}')
    model.eval()
    dynamic = {'images': {0: 'batch'}}
    dynamic.update({name: {0: 'batch'} for name in output_names})
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns at each shape-dependent branch (padding); the
        # spatial size is fixed by design, see the module doc.
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(model, (images, ), output, dynamo=False,
                          opset_version=opset, input_names=['images'],
                          output_names=output_names, dynamic_axes=dynamic)


def check(model, output, images, tolerance):
    """Run ``output`` with onnxruntime; return ``(worst relative error,
    {name: max abs difference})`` against PyTorch."""
    import onnxruntime
    session = onnxruntime.InferenceSession(
        output, providers=['CPUExecutionProvider'])
    got = session.run(None, {'images': images.numpy()})
    with torch.no_grad():
        expected = model.eval()(images)
    if isinstance(expected, torch.Tensor):
        expected = (expected, )
    if len(got) != len(expected):
        raise RuntimeError(f'{output}: {len(got)} outputs, PyTorch gives '
                           f'{len(expected)}')
    worst, diffs = 0.0, {}
    for out, ref, name in zip(got, expected, session.get_outputs()):
        ref = ref.numpy()
        if out.shape != ref.shape:
            raise RuntimeError(f'{output}: output {name.name} has shape '
                               f'{out.shape}, PyTorch {ref.shape}')
        diff = float(abs(out - ref).max())
        diffs[name.name] = diff
        worst = max(worst, diff / max(1.0, float(abs(ref).max())))
    return worst, diffs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('target', metavar='MODEL_OR_CONFIG',
                        help='timm model name (litv2_s, ...) or config file')
    parser.add_argument('--checkpoint', help='weights (default: random)')
    parser.add_argument('--shape', type=int, nargs='+',
                        help='input H [W] (default: see above)')
    parser.add_argument('--batch-size', type=int, default=1,
                        help='batch of the traced / checked input')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--output', help='default: <model or config>.onnx')
    parser.add_argument('--check', action='store_true',
                        help='compare onnxruntime with PyTorch')
    parser.add_argument('--tolerance', type=float, default=1e-4)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings (configs only)')
    args = parser.parse_args(argv)
    if args.shape is not None and (len(args.shape) not in (1, 2)
                                   or min(args.shape) < 1):
        parser.error(f'--shape takes H or H W, positive; got {args.shape}')
    if args.batch_size < 1:
        parser.error('--batch-size must be >= 1')
    if args.opset < MIN_OPSET:
        parser.error(f'--opset must be >= {MIN_OPSET} (GridSample)')
    if args.cfg_options and not is_config(args.target):
        parser.error('--cfg-options applies to config files only')
    if args.output is None:
        stem = osp.splitext(osp.basename(args.target))[0]
        args.output = f'{stem}.onnx'
    return args


def main(argv=None):
    args = parse_args(argv)
    if is_config(args.target):
        model, shape, names = build_backbone(args.target, args.checkpoint,
                                             args.cfg_options)
    else:
        model, shape, names = build_classifier(args.target, args.checkpoint)
    if args.shape:
        shape = (args.shape[0], args.shape[-1])
    generator = torch.Generator().manual_seed(args.seed)
    images = torch.randn(args.batch_size, 3, *shape, generator=generator)
    export(model, images, args.output, names, args.opset)
    print(f'wrote {args.output} ({args.target}, input {args.batch_size}x3x'
          f'{shape[0]}x{shape[1]}, batch dynamic, opset {args.opset})')
    if args.check:
        # a different batch than the traced one: the batch axis is dynamic
        images = torch.randn(args.batch_size + 1, 3, *shape,
                             generator=generator)
        worst, diffs = check(model, args.output, images, args.tolerance)
        print('onnxruntime vs PyTorch, max abs difference: ' + ', '.join(
            f'{k} {v:.3g}' for k, v in diffs.items()))
        if worst > args.tolerance:
            raise SystemExit(f'mismatch: {worst:.3g} > {args.tolerance:g} '
                             '(relative to the largest output)')
        print(f'match within {args.tolerance:g}')
    return args.output


if __name__ == '__main__':
    main()
