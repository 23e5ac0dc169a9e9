#!/usr/bin/env python
"""Quickstart (``make demo``): train a small LITv2 detector from scratch on the
toy shapes data set on CPU and evaluate the checkpoint it wrote.

Steps, each timed:

1. ``tools/make_toy_dataset.py`` writes ``data/toy`` unless it is there;
2. ``tools/train.py configs/quickstart/retinanet_litv2_toy.py`` trains;
3. ``tools/test.py`` evaluates the last checkpoint on the toy validation
   split (COCO box AP; with the Mask R-CNN config also mask AP; with the
   Semantic FPN config mIoU);
4. ``tools/infer.py`` draws the checkpoint's predictions on the first
   ``--pictures`` validation images, and each is put beside its ground truth
   (drawn by the same visualizer) in ``<work dir>/pictures/`` (one
   ``<image>.png`` each and ``overview.png``);

then the metrics are printed, and the last line names the pictures' folder.
The exit status is 1 if the headline metric (box mAP, or mIoU for
segmentation) is below ``--min-score``.

    python tools/quickstart.py [--config CONFIG] [--work-dir DIR]
        [--data DIR] [--min-score S] [--amp] [--pictures N]
        [--cfg-options KEY=VALUE ...]

``--amp`` trains under mixed precision (bf16 autocast on a CPU with bf16
arithmetic, see tools/train.py); the test runs in fp32 either way.
"""
import argparse
import glob
import json
import os
import os.path as osp
import shutil
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
    parser.add_argument('--pictures', type=int, default=4,
                        help='validation images drawn at the end, beside '
                        'their ground truth (default 4; 0: none)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='passed on to tools/train.py, tools/test.py and '
                        'tools/infer.py')
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


def _toy_split(config, data):
    """``(task, images, annotations)`` of the quickstart config's toy
    validation split: ``annotations`` is the COCO json (detection) or the
    folder of label maps (segmentation)."""
    if 'semantic_fpn' in osp.basename(config):
        return ('mmseg', osp.join(data, 'seg', 'images', 'validation'),
                osp.join(data, 'seg', 'annotations', 'validation'))
    return ('mmdet', osp.join(data, 'coco', 'val'),
            osp.join(data, 'coco', 'annotations', 'instances_val.json'))


def validation_images(config, data, count, folder):
    """Copy the first ``count`` toy validation images into ``folder`` (made
    afresh; relative to the repository) and return it."""
    _, images, _ = _toy_split(config, osp.join(REPO, data))
    names = sorted(n for n in os.listdir(images) if n.endswith('.png'))
    target = osp.join(REPO, folder)
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    for name in names[:count]:
        shutil.copy(osp.join(images, name), target)
    return folder


def _ground_truth(config, data, name, image, cfg_options):
    """The toy validation image ``name`` with its ground truth drawn by the
    task's visualizer (the one tools/infer.py draws the predictions with)."""
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.structures import InstanceData, PixelData
    cfg = Config.fromfile(osp.join(REPO, config))
    if cfg_options:
        from mmengine.config import DictAction
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--o', *cfg_options]).o)
    meta = cfg.test_dataloader.dataset.metainfo
    task, _, annotations = _toy_split(config, osp.join(REPO, data))
    if task == 'mmseg':
        from mmseg.structures import SegDataSample
        from mmseg.visualization import SegLocalVisualizer
        from PIL import Image
        labels = np.array(Image.open(osp.join(annotations, name)))
        sample = SegDataSample(
            gt_sem_seg=PixelData(data=torch.from_numpy(labels)[None].long()))
        visualizer = SegLocalVisualizer.get_instance('quickstart_gt',
                                                     alpha=0.5)
        visualizer.set_dataset_meta(list(meta['classes']),
                                    [list(c) for c in meta['palette']])
        visualizer.add_datasample('gt', image, sample, draw_gt=True,
                                  draw_pred=False, with_labels=True)
        return visualizer.get_image()
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer
    from pycocotools import mask as mask_utils
    with open(annotations) as f:
        coco = json.load(f)
    (info, ) = [i for i in coco['images'] if i['file_name'] == name]
    anns = [a for a in coco['annotations'] if a['image_id'] == info['id']]
    category_index = {c['id']: meta['classes'].index(c['name'])
                      for c in coco['categories']}
    instances = InstanceData(
        bboxes=torch.tensor([[x, y, x + w, y + h]
                             for x, y, w, h in (a['bbox'] for a in anns)],
                            dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor([category_index[a['category_id']]
                             for a in anns], dtype=torch.long))
    if 'mask_head' in cfg.model.get('roi_head', {}):
        h, w = info['height'], info['width']
        instances.masks = np.stack([
            mask_utils.decode(mask_utils.merge(
                mask_utils.frPyObjects(a['segmentation'], h, w))).astype(bool)
            for a in anns]) if anns else np.zeros((0, h, w), bool)
    visualizer = DetLocalVisualizer.get_instance('quickstart_gt')
    visualizer.dataset_meta = dict(classes=meta['classes'],
                                   palette=meta['palette'])
    visualizer.add_datasample('gt', image, DetDataSample(
        gt_instances=instances), draw_gt=True, draw_pred=False)
    return visualizer.get_image()


def _captioned(image, caption):
    """``image`` (RGB) under a white strip with ``caption``."""
    import cv2
    import numpy as np
    strip = np.full((16, image.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, caption, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, image])


def _hstack(images, gap=4):
    import numpy as np
    height = max(i.shape[0] for i in images)
    parts = []
    for image in images:
        pad = np.full((height, image.shape[1] + gap, 3), 255, np.uint8)
        pad[:image.shape[0], :image.shape[1]] = image
        parts.append(pad)
    return np.concatenate(parts, axis=1)[:, :-gap]


def side_by_side(config, data, pictures_dir, cfg_options):
    """Each drawn prediction (``<pictures>/infer/vis/``) beside its ground
    truth: ``<pictures>/<image>.png``; all of them, one row each, in
    ``<pictures>/overview.png``."""
    import mmcv
    import numpy as np
    folder = osp.join(REPO, pictures_dir)
    inputs = osp.join(folder, 'inputs')
    rows = []
    for name in sorted(os.listdir(inputs)):
        drawn = osp.join(folder, 'infer', 'vis', name)
        if not osp.isfile(drawn):
            continue
        image = mmcv.imread(osp.join(inputs, name), channel_order='rgb')
        truth = _ground_truth(config, data, name, image, cfg_options)
        pred = mmcv.imread(drawn, channel_order='rgb')
        caption = ('prediction' if 'semantic_fpn' in config else
                   'prediction, score >= 0.3')
        row = _hstack([_captioned(truth, f'{name}: ground truth'),
                       _captioned(pred, caption)])
        mmcv.imwrite(mmcv.rgb2bgr(row), osp.join(folder, name))
        rows.append(row)
    if rows:
        width = max(r.shape[1] for r in rows)
        overview = np.concatenate([
            np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)),
                   constant_values=255) for r in rows])
        mmcv.imwrite(mmcv.rgb2bgr(overview), osp.join(folder, 'overview.png'))


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
    metrics = test_metrics(work_dir_abs, test_start - 1)
    pictures_dir = osp.join(work_dir, 'pictures')
    if args.pictures > 0:
        pictures_start = time.perf_counter()
        run([
            py, 'tools/infer.py',
            validation_images(config, args.data, args.pictures,
                              osp.join(pictures_dir, 'inputs')),
            config, '--weights', checkpoint, '--out-dir',
            osp.join(pictures_dir, 'infer'), *options
        ], 'draw predictions')
        side_by_side(config, args.data, pictures_dir, args.cfg_options)
        times['pictures'] = time.perf_counter() - pictures_start
    total = time.perf_counter() - start

    print('\n[quickstart] ' + '=' * 60)
    print(f'[quickstart] {config} on {args.data} (CPU threads: '
          f'{os.cpu_count()})')
    print(f'[quickstart] checkpoint: {checkpoint}')
    for key in SHOWN:
        if key in metrics:
            print(f'[quickstart]   {key:18s} {metrics[key]:.3f}')
    print('[quickstart] wall time: ' + ', '.join(
        f'{k} {v:.0f} s' for k, v in times.items()) + f'; total {total:.0f} s')
    status = 1
    for key, (label, default) in HEADLINES.items():
        if key in metrics:
            floor = default if args.min_score is None else args.min_score
            if metrics[key] < floor:
                print(f'[quickstart] FAILED: {label} {metrics[key]:.3f} < '
                      f'{floor}')
            else:
                print(f'[quickstart] OK: {label} {metrics[key]:.3f} >= '
                      f'{floor}')
                status = 0
            break
    else:
        print(f'[quickstart] FAILED: none of {sorted(HEADLINES)} in the test '
              f'metrics {sorted(metrics)}')
    if args.pictures > 0:
        print(f'[quickstart] pictures, ground truth | prediction: '
              f'{pictures_dir}/ (all in {pictures_dir}/overview.png)')
    return status


if __name__ == '__main__':
    sys.exit(main())
