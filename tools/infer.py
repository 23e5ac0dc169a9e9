#!/usr/bin/env python
"""Run a LITv2 detector (mmdet 3) or segmentor (mmseg 1) on your own images
and draw its predictions; the task is read from the config. The interface of
mmdet's ``demo/image_demo.py``, built on mmdet's ``DetInferencer`` and mmseg's
``MMSegInferencer``.

    python tools/infer.py INPUTS CONFIG [--weights CKPT] [--out-dir DIR]
        [--device cpu|cuda] [--pred-score-thr T] [--batch-size N] [--show]
        [--no-save-vis] [--no-save-pred] [--print-result] [--opacity A]
        [--cfg-options KEY=VALUE ...]

INPUTS is an image, a folder (its images, not its sub-folders) or a glob
(quote it: ``'photos/**/*.jpg'``). Written under DIR (default ``outputs``):

* ``vis/<name>``: the image with the predictions drawn (detection: boxes,
  class names and scores of the predictions scored at least T, and their
  masks, the best drawn last, on top; segmentation: the label map in the
  classes' colours over the image);
* ``preds/<name>.json`` (detection: ``labels``, ``scores``, ``bboxes`` as
  ``[x1, y1, x2, y2]`` in pixels of the input image, ``masks`` as COCO RLE;
  every prediction, whatever T) or ``preds/<name>.png`` (segmentation: the
  label map, one class index per pixel, at the input's size).

``<name>`` is the image's path relative to the folder that holds all inputs.
The checkpoint is read as data only (``weights_only``, see
litv2_openmmlab/checkpoint/weights_only.py) and must fit the model exactly: a
missing, unexpected or differently shaped tensor stops the run with one line
naming the file. An image that cannot be read is named and skipped; the others
are processed and the exit status is 1. Runs without a GPU (default device:
cuda if there is one, else cpu).
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
import warnings

import numpy as np
import torch
from mmengine.config import Config, DictAction

from litv2.checkpoint import check_checkpoint_path
from litv2_openmmlab.apis.inference import load_config
from litv2_openmmlab.checkpoint import (
    CheckpointError,
    load_state_dict_strictly,
    state_dict_of,
)
from litv2_openmmlab.model_config_check import ModelConfigError

# the image files of a folder or a glob, as mmdet's DetInferencer lists them
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                  '.tiff', '.webp')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw a LITv2 detector\'s or segmentor\'s predictions on '
        'images (task read from the config)')
    parser.add_argument(
        'inputs', help='an image, a folder of images or a glob (quoted)')
    parser.add_argument('config', help='config file (detection or '
                        'segmentation)')
    parser.add_argument(
        '--weights', default=None,
        help='checkpoint file or URL; without it the weights are random')
    parser.add_argument(
        '--out-dir', default='outputs',
        help='folder of the drawn images (vis/) and predictions (preds/)')
    parser.add_argument(
        '--device', default=None,
        help='cpu, cuda or cuda:N (default: cuda if available, else cpu)')
    parser.add_argument(
        '--pred-score-thr', type=float, default=0.3,
        help='detection: draw the boxes scored at least this (default 0.3)')
    parser.add_argument('--batch-size', type=int, default=1,
                        help='images per forward pass (default 1)')
    parser.add_argument('--show', action='store_true',
                        help='display each drawn image in a window')
    parser.add_argument('--wait-time', type=float, default=0,
                        help='with --show: seconds per image (0: a key)')
    parser.add_argument('--no-save-vis', action='store_true',
                        help='do not write the drawn images (vis/)')
    parser.add_argument('--no-save-pred', action='store_true',
                        help='do not write the predictions (preds/)')
    parser.add_argument('--print-result', action='store_true',
                        help='print each image\'s predictions (segmentation: '
                        'pixels per class)')
    parser.add_argument(
        '--opacity', type=float, default=0.5,
        help='segmentation: opacity of the drawn label map (default 0.5)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, as key=value pairs')
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f'--batch-size must be at least 1, got {args.batch_size}')
    if not 0 <= args.opacity <= 1:
        parser.error(f'--opacity must be in [0, 1], got {args.opacity}')
    if args.no_save_vis and args.no_save_pred:
        args.out_dir = ''  # as mmdet's image_demo.py: nothing is written
    return args


class InputError(ValueError):
    """INPUTS names no image."""


def list_inputs(spec: str) -> list:
    """The image files that ``spec`` names: the file itself; a folder's image
    files (sorted, not recursive); or a glob's image files (sorted; ``**``
    matches sub-folders)."""
    if osp.isfile(spec):
        return [spec]
    if osp.isdir(spec):
        found = [osp.join(spec, name) for name in os.listdir(spec)]
        what = f'folder {spec!r} holds'
    elif any(c in spec for c in '*?['):
        found = glob.glob(spec, recursive=True)
        what = f'glob {spec!r} matches'
    else:
        raise InputError(f'{spec!r} is neither a file, a folder nor a glob '
                         'that matches files')
    images = sorted(path for path in found if osp.isfile(path)
                    and path.lower().endswith(IMG_EXTENSIONS))
    if not images:
        raise InputError(f'{what} no image file '
                         f'({", ".join(IMG_EXTENSIONS)})')
    return images


def output_names(paths: list) -> list:
    """Each input's path relative to the deepest folder holding all inputs
    (the output names; unique because the paths are)."""
    folders = [osp.dirname(osp.abspath(p)) for p in paths]
    root = osp.commonpath(folders)
    return [osp.relpath(osp.abspath(p), root) for p in paths]


def pick_device(requested):
    if requested is None:
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if requested.startswith('cuda') and not torch.cuda.is_available():
        raise SystemExit(f'--device {requested}: no CUDA device here (use '
                         '--device cpu)')
    return requested


def load_read_checkpoint(model: torch.nn.Module, checkpoint: dict,
                         filename: str) -> None:
    """Load a checkpoint already read as data into ``model`` with the
    project's strict loader (every tensor of the model, same shapes, nothing
    else; otherwise one error naming the file, counts and first keys)."""
    load_state_dict_strictly(
        model, state_dict_of(checkpoint, filename),
        source=f'checkpoint {filename!r}',
        advice='Use the config the checkpoint was trained with: '
        'tools/infer.py loads every key of the model (tools/test.py '
        '--allow-missing loads part of a file on purpose)')


def _config_metainfo(cfg) -> dict:
    """classes / palette of the config's test data set (not loaded)."""
    from mmengine.registry import DATASETS
    dataset = dict(cfg.test_dataloader.dataset, lazy_init=True)
    try:
        return dict(DATASETS.build(dataset).metainfo)
    except Exception:  # a data set type this scope cannot build
        return {}


def build_inferencer(task: str, cfg: Config, weights, device: str):
    """mmdet's ``DetInferencer`` or mmseg's ``MMSegInferencer`` for ``cfg``,
    with ``weights`` loaded strictly (both inferencers load non-strictly and
    only warn). Class names and colours: the checkpoint's ``dataset_meta``,
    else the config's data set (where the inferencers would take COCO's or
    Cityscapes')."""
    if task == 'mmdet':
        from mmdet.apis import DetInferencer as Base
    else:
        from mmseg.apis import MMSegInferencer as Base

    class StrictInferencer(Base):

        def _load_weights_to_model(self, model, checkpoint, cfg):
            if checkpoint is not None:
                load_read_checkpoint(model, checkpoint, weights)
            meta = (checkpoint or {}).get('meta', {})
            with warnings.catch_warnings():  # their fallbacks are replaced
                warnings.simplefilter('ignore')
                # class names / palette (the weights load again, unchanged)
                super()._load_weights_to_model(model, checkpoint, cfg)
            from_config = _config_metainfo(cfg)
            if 'dataset_meta' not in meta and 'CLASSES' not in meta \
                    and from_config.get('classes'):
                model.dataset_meta = {
                    'classes': from_config['classes'],
                    'palette': from_config.get('palette')
                }
            classes = model.dataset_meta['classes']
            palette = model.dataset_meta.get('palette')
            if palette is None or (not isinstance(palette, str)
                                   and len(palette) != len(classes)):
                palette = from_config.get('palette')
                if palette is None or len(palette) != len(classes):
                    rng = np.random.RandomState(42)
                    palette = rng.randint(0, 256, (len(classes), 3)).tolist()
                # colours as tuples: mmengine's drawing takes a list for
                # several colours (mmdet 2.x files have CLASSES, no PALETTE)
                model.dataset_meta['palette'] = [tuple(int(v) for v in c)
                                                 for c in palette]

    return StrictInferencer(model=cfg, weights=weights, device=device)


class Outputs:
    """Writes the drawn images and the predictions of one run."""

    def __init__(self, inferencer, task, args):
        self.inferencer = inferencer
        self.task = task
        self.args = args
        self.undrawn = []  # (path, reason) of images the visualiser failed
        self.vis_dir = osp.join(args.out_dir, 'vis') if (
            args.out_dir and not args.no_save_vis) else None
        self.pred_dir = osp.join(args.out_dir, 'preds') if (
            args.out_dir and not args.no_save_pred) else None
        visualizer = inferencer.visualizer
        if task == 'mmseg':
            visualizer.set_dataset_meta(**inferencer.model.dataset_meta)
            visualizer.alpha = args.opacity
        else:
            visualizer.dataset_meta = inferencer.model.dataset_meta

    def __call__(self, path: str, name: str, pred) -> None:
        import mmengine
        args = self.args
        if self.vis_dir is not None or args.show:
            try:
                self._draw(path, name, pred)
            except Exception as err:  # noqa: BLE001  the visualiser's own
                # (mmseg's fails on a 1x1 image): the others go on
                self.undrawn.append((path, _reason(err)))
                print(f'[infer] could not draw {path} ({_reason(err)}); its '
                      'predictions are written', file=sys.stderr)
        stem = osp.splitext(name)[0]
        if self.task == 'mmdet':
            result = self.inferencer.pred2dict(pred)
            if self.pred_dir is not None:
                mmengine.dump(result,
                              osp.join(self.pred_dir, stem + '.json'))
            if args.print_result:
                print(json.dumps(dict(image=path, **result)))
        else:
            labels = pred.pred_sem_seg.data[0].cpu().numpy()
            if self.pred_dir is not None:
                self._write_label_map(labels,
                                      osp.join(self.pred_dir, stem + '.png'))
            if args.print_result:
                classes = self.inferencer.model.dataset_meta['classes']
                index, count = np.unique(labels, return_counts=True)
                pixels = {(classes[i] if i < len(classes) else int(i)): int(n)
                          for i, n in zip(index, count)}
                print(json.dumps(dict(image=path, shape=list(labels.shape),
                                      pixels_per_class=pixels)))

    def _draw(self, path: str, name: str, pred) -> None:
        import mmcv
        import mmengine
        args = self.args
        image = mmcv.imfrombytes(mmengine.fileio.get(path),
                                 channel_order='rgb')
        out_file = (osp.join(self.vis_dir, name)
                    if self.vis_dir is not None else None)
        drawn, kwargs = pred, dict(with_labels=True)
        if self.task == 'mmdet':
            kwargs = dict(pred_score_thr=args.pred_score_thr)
            drawn = self._best_on_top(pred)
        self.inferencer.visualizer.add_datasample(
            name, image, drawn, draw_gt=False, draw_pred=True,
            show=args.show, wait_time=args.wait_time, out_file=out_file,
            **kwargs)

    @staticmethod
    def _best_on_top(pred):
        """The predictions in ascending order of score, so that where boxes
        overlap (e.g. one object, two classes) the best one is drawn last,
        its box and label on top. (mmdet draws in descending order: the best
        guess ends up hidden under a worse one.)"""
        if 'pred_instances' not in pred:
            return pred
        drawn = pred.clone()
        order = pred.pred_instances.scores.argsort(stable=True)
        drawn.pred_instances = pred.pred_instances[order]
        return drawn

    @staticmethod
    def _write_label_map(labels: np.ndarray, path: str) -> None:
        from PIL import Image
        os.makedirs(osp.dirname(path), exist_ok=True)
        if labels.max(initial=0) < 256:
            Image.fromarray(labels.astype(np.uint8)).save(path)
        else:  # more than 256 classes: 16-bit PNG
            Image.fromarray(labels.astype(np.uint16)).save(path)


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f'{type(err).__name__}: {text[0]}' if text else type(err).__name__


def run(inferencer, task, paths, names, args) -> list:
    """Infer every image, ``--batch-size`` at a time, writing its outputs;
    return ``[(path, reason)]`` of the images that could not be read, and
    of those that could not be drawn."""
    from rich.progress import Progress
    write = Outputs(inferencer, task, args)
    failed = []
    with Progress(disable=len(paths) < 2) as progress:
        bar = progress.add_task('Inference', total=len(paths))
        for start in range(0, len(paths), args.batch_size):
            batch, kept = [], []
            for path, name in zip(paths[start:start + args.batch_size],
                                  names[start:start + args.batch_size]):
                try:  # reads and prepares the image (the test pipeline)
                    batch.append(inferencer.pipeline(path))
                    kept.append((path, name))
                except Exception as err:  # noqa: BLE001  any unreadable file
                    failed.append((path, _reason(err)))
                    # (on a terminal the bar shows it above itself)
                    print(f'[infer] skipped {path}: cannot read it '
                          f'({_reason(err)})', file=sys.stderr)
            if batch:
                preds = inferencer.forward(inferencer.collate_fn(batch))
                for (path, name), pred in zip(kept, preds):
                    write(path, name, pred)
            progress.advance(bar, len(paths[start:start + args.batch_size]))
    return failed, write.undrawn


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        paths = list_inputs(args.inputs)
    except InputError as err:
        print(f'[infer] {err}', file=sys.stderr)
        return 2
    device = pick_device(args.device)
    try:
        # the task's plugin imported: LITv2 registered, checkpoints read
        # as data only
        cfg, task = load_config(args.config, args.cfg_options)
    except ModelConfigError as err:
        print(f'[infer] {type(err).__name__}: {err}', file=sys.stderr)
        return 2
    if args.weights is None:
        print('[infer] no --weights: the model has random weights, its '
              'predictions mean nothing', file=sys.stderr)
    else:
        try:
            check_checkpoint_path(args.weights)
        except OSError as err:
            print(f'[infer] {err}', file=sys.stderr)
            return 1
    try:
        inferencer = build_inferencer(task, cfg, args.weights, device)
    except (CheckpointError, ModelConfigError) as err:
        print(f'[infer] {type(err).__name__}: {err}', file=sys.stderr)
        return 1

    names = output_names(paths)
    failed, undrawn = run(inferencer, task, paths, names, args)

    done = len(paths) - len(failed)
    print(f'[infer] {done} of {len(paths)} images on {device} ({task}, '
          f'{osp.basename(args.config)})')
    if args.out_dir and not args.no_save_vis:
        print(f'[infer] drawn images: {osp.join(args.out_dir, "vis")}/')
    if args.out_dir and not args.no_save_pred:
        print(f'[infer] predictions: {osp.join(args.out_dir, "preds")}/')
    if undrawn:
        print(f'[infer] FAILED: {len(undrawn)} of {len(paths)} images could '
              'not be drawn: ' + ', '.join(p for p, _ in undrawn),
              file=sys.stderr)
    if failed:
        print(f'[infer] FAILED: {len(failed)} of {len(paths)} images could '
              'not be read: ' + ', '.join(p for p, _ in failed),
              file=sys.stderr)
    return 1 if failed or undrawn else 0


if __name__ == '__main__':
    sys.exit(main())
