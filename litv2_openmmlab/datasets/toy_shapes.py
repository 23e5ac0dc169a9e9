"""The quickstart's toy data set: synthetic shapes on textured backgrounds
(:func:`generate`; ``tools/make_toy_dataset.py`` is its command line).

Two parts, both made from one seed (same seed, same files, byte for byte):

``<out>/coco``  COCO-format instance segmentation (mmdet's ``CocoDataset``)::

    coco/train/000000.png ...             RGB images, 128-192 px a side
    coco/val/000000.png ...
    coco/annotations/instances_train.json polygons, boxes, areas
    coco/annotations/instances_val.json

``<out>/seg``  ADE20K-style semantic segmentation (mmseg's
``BaseSegDataset``)::

    seg/images/training/000000.png ...        RGB images
    seg/images/validation/...
    seg/annotations/training/000000.png ...   single-channel label maps
    seg/annotations/validation/...

Classes: ``circle``, ``square``, ``triangle`` (COCO category ids 1, 2, 3).
Label maps use an explicit convention, NOT ADE20K's ``reduce_zero_label``:
0 = background (a class of its own, so use ``reduce_zero_label=False`` and the
4 classes ``background, circle, square, triangle``), 1 = circle, 2 = square,
3 = triangle; 255 (ignore) is never written.

Every shape is a polygon in COCO's continuous pixel coordinates (pixel ``(x,
y)`` covers ``[x, x+1) x [y, y+1)``); it is rasterised with pycocotools, the
very rasteriser mmdet and the COCO evaluation apply to the annotations, and
that mask is what is painted into the image and the label map. Shapes do not
overlap, so each instance mask is exactly the visible shape. Boxes are the
polygons' extents ``[x, y, w, h]``.
"""
import io
import json
import math
import os
import os.path as osp
import zlib

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

CLASSES = ('circle', 'square', 'triangle')
SEG_CLASSES = ('background', ) + CLASSES
SEG_PALETTE = [[0, 0, 0], [220, 20, 60], [0, 130, 200], [255, 200, 0]]

# Default split sizes: (number of images) for each split.
DET_SPLITS = (('train', 300), ('val', 50))
SEG_SPLITS = (('training', 200), ('validation', 50))
SIZE_RANGE = (128, 192)  # image sides, inclusive
OBJ_RANGE = (24, 64)  # shape extents in pixels, inclusive
MAX_SHAPES = 4
# Layout version: bump when the generated content changes for a given seed.
VERSION = 1
STAMP = 'toy_dataset.json'


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A textured background: a colour, a smooth random field, stripes."""
    base = rng.uniform(40, 215, size=3)
    grid = rng.normal(0, 28, size=(rng.integers(3, 7), rng.integers(3, 7), 3))
    smooth = np.stack([
        np.asarray(Image.fromarray(grid[..., c].astype(np.float32), 'F')
                   .resize((w, h), Image.BICUBIC)) for c in range(3)
    ], axis=-1)
    img = base + smooth
    if rng.random() < 0.5:  # faint stripes of a random direction and period
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(6, 20)
        yy, xx = np.mgrid[0:h, 0:w]
        phase = (xx * math.cos(theta) + yy * math.sin(theta)) / period
        img = img + rng.uniform(8, 20) * np.sin(2 * math.pi * phase)[..., None]
    return img


def _polygon(rng: np.random.Generator, label: int, size: float, cx: float,
             cy: float) -> np.ndarray:
    """Vertices (N, 2) of one shape of extent about ``size`` centred at
    ``(cx, cy)``; label 0 circle, 1 square, 2 triangle."""
    if label == 0:
        t = np.linspace(0, 2 * math.pi, 32, endpoint=False)
        radius = size / 2
    elif label == 1:
        t = np.array([0.25, 0.75, 1.25, 1.75]) * math.pi
        t = t + rng.uniform(-math.pi / 9, math.pi / 9)  # +-20 degrees
        radius = size / 2 * math.sqrt(2) * 0.85
    else:
        t = np.array([-0.5, 1 / 6, 5 / 6]) * math.pi
        t = t + rng.uniform(-math.pi / 6, math.pi / 6)  # +-30 degrees
        radius = size / 2 * 1.1
    pts = np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], 1)
    return np.round(pts, 2)


def _rasterise(poly: np.ndarray, h: int, w: int) -> np.ndarray:
    rle = mask_utils.frPyObjects([poly.ravel().tolist()], h, w)
    return mask_utils.decode(mask_utils.merge(rle)).astype(bool)


def make_scene(rng: np.random.Generator):
    """One image: ``(rgb uint8 HxWx3, [(label 0..2, polygon, mask)])``."""
    h, w = (int(v) for v in rng.integers(SIZE_RANGE[0], SIZE_RANGE[1] + 1, 2))
    img = _texture(rng, h, w)
    shapes, boxes = [], []
    for _ in range(int(rng.integers(1, MAX_SHAPES + 1))):
        for _attempt in range(20):  # rejection sampling: no overlaps
            label = int(rng.integers(len(CLASSES)))
            size = rng.uniform(*OBJ_RANGE)
            cx = rng.uniform(size / 2 + 1, w - size / 2 - 1)
            cy = rng.uniform(size / 2 + 1, h - size / 2 - 1)
            poly = _polygon(rng, label, size, cx, cy)
            x0, y0 = poly.min(0) - 3
            x1, y1 = poly.max(0) + 3
            if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
                continue
            if all(x1 <= a0 or b1 <= x0 or y1 <= b0 or c1 <= y0
                   for a0, b0, b1, c1 in boxes):
                boxes.append((x0, y0, x1, y1))
                break
        else:
            continue
        mask = _rasterise(poly, h, w)
        colour = rng.uniform(0, 255, size=3)
        bg = img[mask].mean(0)
        while np.linalg.norm(colour - bg) < 110:  # keep shapes visible
            colour = rng.uniform(0, 255, size=3)
        # a gentle left-to-right shading across the shape's colour
        shade = np.linspace(-1, 1, w)[None, :, None] * rng.uniform(-25, 25, 3)
        img[mask] = colour + np.broadcast_to(shade, img.shape)[mask]
        shapes.append((label, poly, mask))
    img = img + rng.normal(0, 10, size=img.shape)  # sensor noise
    return np.clip(np.round(img), 0, 255).astype(np.uint8), shapes


def _png(array: np.ndarray, path: str) -> None:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format='PNG', compress_level=6)
    with open(path, 'wb') as f:
        f.write(buf.getvalue())


def _write_json(obj, path: str) -> None:
    with open(path, 'w') as f:
        json.dump(obj, f, sort_keys=True, separators=(',', ':'))


def make_coco_split(rng, root: str, split: str, num: int) -> dict:
    img_dir = osp.join(root, split)
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    for i in range(num):
        img, shapes = make_scene(rng)
        name = f'{i:06d}.png'
        _png(img, osp.join(img_dir, name))
        images.append(dict(id=i + 1, file_name=name, height=img.shape[0],
                           width=img.shape[1]))
        for label, poly, mask in shapes:
            x0, y0 = poly.min(0)
            x1, y1 = poly.max(0)
            annotations.append(dict(
                id=len(annotations) + 1, image_id=i + 1,
                category_id=label + 1, iscrowd=0,
                segmentation=[poly.ravel().tolist()],
                area=int(mask.sum()),
                bbox=[round(float(v), 2) for v in (x0, y0, x1 - x0,
                                                  y1 - y0)]))
    coco = dict(
        info=dict(description=f'LITv2 toy shapes ({split})',
                  version=str(VERSION)),
        licenses=[],
        categories=[dict(id=i + 1, name=n, supercategory='shape')
                    for i, n in enumerate(CLASSES)],
        images=images, annotations=annotations)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    _write_json(coco, osp.join(root, 'annotations', f'instances_{split}.json'))
    return dict(images=len(images), instances=len(annotations))


def make_seg_split(rng, root: str, split: str, num: int) -> dict:
    img_dir = osp.join(root, 'images', split)
    ann_dir = osp.join(root, 'annotations', split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    for i in range(num):
        img, shapes = make_scene(rng)
        label_map = np.zeros(img.shape[:2], np.uint8)
        for label, _poly, mask in shapes:
            label_map[mask] = label + 1
        _png(img, osp.join(img_dir, f'{i:06d}.png'))
        _png(label_map, osp.join(ann_dir, f'{i:06d}.png'))
    return dict(images=num)


def _settings(seed: int, det_splits, seg_splits) -> dict:
    return dict(version=VERSION, seed=seed, det_splits=dict(det_splits),
                seg_splits=dict(seg_splits), classes=list(CLASSES),
                seg_classes=list(SEG_CLASSES))


def generate(out: str = 'data/toy', seed: int = 0,
             det_splits=DET_SPLITS, seg_splits=SEG_SPLITS) -> dict:
    """Write the data set under ``out`` and return a summary. Each split
    draws from its own random stream (seed, part, split), so the splits do
    not depend on each other's sizes."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f'seed must be an int >= 0, got {seed!r}')
    summary = _settings(seed, det_splits, seg_splits)
    for part, splits, make in (('coco', det_splits, make_coco_split),
                               ('seg', seg_splits, make_seg_split)):
        for split, num in splits:
            if not isinstance(num, int) or num < 1:
                raise ValueError(f'{part} split {split!r}: the number of '
                                 f'images must be an int >= 1, got {num!r}')
            key = zlib.crc32(f'{part}/{split}'.encode())
            rng = np.random.default_rng([seed, key])
            summary[f'{part}/{split}'] = make(rng, osp.join(out, part), split,
                                              num)
    _write_json(summary, osp.join(out, STAMP))
    return summary


def is_complete(out: str, seed: int = 0, det_splits=DET_SPLITS,
                seg_splits=SEG_SPLITS) -> bool:
    """Whether ``out`` holds a finished data set made with these settings
    (the stamp file is written last)."""
    try:
        with open(osp.join(out, STAMP)) as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return False
    want = json.loads(json.dumps(_settings(seed, det_splits, seg_splits)))
    return all(stamp.get(k) == v for k, v in want.items())
