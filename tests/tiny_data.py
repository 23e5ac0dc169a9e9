"""Tiny synthetic COCO / ADE20K datasets and small run configs for testing the
configs and tools without the real data (nothing is downloaded)."""
import json
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / 'configs'

# A backbone small enough to train in seconds on a CPU; widths 16-128.
TINY_BACKBONE = dict(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
                     drop_path_rate=0.1, use_checkpoint=False)
TINY_WIDTHS = [16, 32, 64, 128]


def _backbone(init_cfg) -> str:
    args = dict(TINY_BACKBONE, init_cfg=init_cfg)
    return 'dict(' + ', '.join(f'{k}={v!r}' for k, v in args.items()) + ')'


def make_coco(root: Path, num_images: int = 2, size=(64, 80)) -> Path:
    """``root/img/*.jpg`` and ``root/ann.json`` with two boxes (and polygon
    masks) per image of the classes person (id 1) and car (id 3)."""
    rng = np.random.default_rng(0)
    (root / 'img').mkdir(parents=True, exist_ok=True)
    h, w = size
    images, annotations = [], []
    for i in range(num_images):
        name = f'{i:04d}.jpg'
        pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / 'img' / name)
        images.append(dict(id=i + 1, file_name=name, height=h, width=w))
        for j, (x, y, bw, bh, cat) in enumerate(((4, 6, 30, 24, 1),
                                                 (30, 20, 40, 36, 3))):
            annotations.append(dict(
                id=2 * i + j + 1, image_id=i + 1, category_id=cat,
                bbox=[x, y, bw, bh], area=bw * bh, iscrowd=0,
                segmentation=[[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]))
    categories = [dict(id=1, name='person'), dict(id=3, name='car')]
    (root / 'ann.json').write_text(json.dumps(dict(
        images=images, annotations=annotations, categories=categories)))
    return root


def make_ade(root: Path, num_images: int = 2, size=(64, 64)) -> Path:
    """ADE20K layout: ``images/{training,validation}/*.jpg`` and
    ``annotations/{training,validation}/*.png`` (labels 0-150, 0 = ignore)."""
    rng = np.random.default_rng(0)
    for split in ('training', 'validation'):
        (root / 'images' / split).mkdir(parents=True, exist_ok=True)
        (root / 'annotations' / split).mkdir(parents=True, exist_ok=True)
        for i in range(num_images):
            pixels = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
            labels = rng.integers(0, 151, size, dtype=np.uint8)
            Image.fromarray(pixels).save(root / 'images' / split / f'{i}.jpg')
            Image.fromarray(labels).save(
                root / 'annotations' / split / f'{i}.png')
    return root


def tiny_det_config(path: Path, base: str, data_root: Path, epochs: int = 1,
                    init_cfg=None, extra: str = '') -> Path:
    """A config that inherits ``configs/<base>.py`` and only shrinks the
    backbone, the images and the run to fit a CPU test (``extra``: more
    lines of config)."""
    with_mask = base.startswith('mask_rcnn')
    load = ("dict(type='LoadAnnotations', with_bbox=True"
            + (', with_mask=True)' if with_mask else ')'))
    # the two classes of the data (person, car)
    heads = ('roi_head=dict(bbox_head=dict(num_classes=2), '
             'mask_head=dict(num_classes=2))' if with_mask else
             'bbox_head=dict(num_classes=2)')
    path.write_text(f"""\
_base_ = {str(CONFIGS / (base + '.py'))!r}
model = dict(backbone={_backbone(init_cfg)},
             neck=dict(in_channels={TINY_WIDTHS!r}), {heads})
data_root = {str(data_root) + '/'!r}
metainfo = dict(classes=('person', 'car'))
train_pipeline = [
    dict(type='LoadImageFromFile'), {load},
    dict(type='Resize', scale=(80, 64), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5), dict(type='PackDetInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(80, 64), keep_ratio=True), {load},
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                          'img_shape', 'scale_factor'))]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='ann.json', metainfo=metainfo,
                 data_prefix=dict(img='img/'), pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='ann.json', metainfo=metainfo,
                 data_prefix=dict(img='img/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'ann.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs={epochs})
default_hooks = dict(logger=dict(interval=1))
{extra}
""")
    return path


def tiny_seg_config(path: Path, base: str, data_root: Path, iters: int = 2,
                    init_cfg=None, extra: str = '') -> Path:
    """Like :func:`tiny_det_config` for a Semantic FPN config."""
    path.write_text(f"""\
_base_ = {str(CONFIGS / (base + '.py'))!r}
crop_size = (64, 64)
model = dict(data_preprocessor=dict(size=crop_size),
             backbone={_backbone(init_cfg)},
             neck=dict(in_channels={TINY_WIDTHS!r}))
data_root = {str(data_root)!r}
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(128, 64), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5), dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 64), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')]
train_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_iters={iters}, val_interval={iters})
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval={iters}))
{extra}
""")
    return path
