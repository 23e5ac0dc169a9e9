"""The toy data set (litv2_openmmlab/datasets/toy_shapes.py and its command
line, tools/make_toy_dataset.py): deterministic, valid COCO / ADE20K-style data
that mmdet's CocoDataset and mmseg's BaseSegDataset read as the quickstart
configs describe it."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from litv2_openmmlab.datasets import toy_shapes as toy
from tools import make_toy_dataset

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / 'configs' / 'quickstart'

DET = (('train', 12), ('val', 5))
SEG = (('training', 6), ('validation', 3))


def digest(root: Path) -> dict:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob('*')) if p.is_file()
    }


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('toy') / 'toy'
    toy.generate(str(root), seed=0, det_splits=DET, seg_splits=SEG)
    return root


def test_same_seed_same_bytes_other_seed_other_data(toy_root, tmp_path):
    again = tmp_path / 'again'
    toy.generate(str(again), seed=0, det_splits=DET, seg_splits=SEG)
    files = digest(toy_root)
    assert files == digest(again)
    expected = {'toy_dataset.json',
                'coco/annotations/instances_train.json',
                'coco/annotations/instances_val.json'}
    expected |= {f'coco/train/{i:06d}.png' for i in range(12)}
    expected |= {f'coco/val/{i:06d}.png' for i in range(5)}
    for split, num in SEG:
        for kind in ('images', 'annotations'):
            expected |= {f'seg/{kind}/{split}/{i:06d}.png' for i in range(num)}
    assert set(files) == expected

    other = tmp_path / 'other'
    toy.generate(str(other), seed=1, det_splits=DET, seg_splits=SEG)
    other_files = digest(other)
    assert other_files.keys() == files.keys()
    images = [k for k in files if k.endswith('.png')]
    assert all(other_files[k] != files[k] for k in images)


def test_split_does_not_depend_on_other_split_sizes(toy_root, tmp_path):
    # each split has its own random stream: more training images leave the
    # validation images as they are
    toy.generate(str(tmp_path), seed=0, det_splits=(('train', 3), ('val', 5)),
                 seg_splits=(('training', 1), ('validation', 3)))
    for name in ('coco/val/000004.png', 'coco/annotations/instances_val.json',
                 'seg/annotations/validation/000002.png'):
        assert (tmp_path / name).read_bytes() == (toy_root /
                                                  name).read_bytes()


@pytest.mark.parametrize('split', ['train', 'val'])
def test_coco_annotations_are_valid(toy_root, split):
    from pycocotools.coco import COCO
    root = toy_root / 'coco'
    coco = COCO(str(root / 'annotations' / f'instances_{split}.json'))
    cats = coco.loadCats(coco.getCatIds())
    assert [(c['id'], c['name']) for c in cats] == [(1, 'circle'),
                                                    (2, 'square'),
                                                    (3, 'triangle')]
    num_images = dict(DET)[split]
    assert sorted(coco.getImgIds()) == list(range(1, num_images + 1))
    seen_labels = set()
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        with Image.open(root / split / info['file_name']) as img:
            assert img.mode == 'RGB'
            assert img.size == (info['width'], info['height'])
            pixels = np.asarray(img).astype(np.int16)
        assert 128 <= info['width'] <= 192 and 128 <= info['height'] <= 192
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        assert 1 <= len(anns) <= toy.MAX_SHAPES
        union = np.zeros((info['height'], info['width']), bool)
        for ann in anns:
            seen_labels.add(ann['category_id'])
            assert ann['iscrowd'] == 0
            mask = coco.annToMask(ann).astype(bool)
            assert mask.shape == union.shape
            assert mask.sum() == ann['area'] > 200
            assert not (mask & union).any(), 'shapes overlap'
            union |= mask
            # the box is the polygon's extent; the rasterised mask fills it
            # to within a pixel
            x, y, w, h = ann['bbox']
            ys, xs = np.nonzero(mask)
            assert abs(xs.min() - x) <= 1 and abs(ys.min() - y) <= 1
            assert abs(xs.max() + 1 - (x + w)) <= 1
            assert abs(ys.max() + 1 - (y + h)) <= 1
            assert 20 <= max(w, h) <= 80
            assert ann['area'] <= (w + 1) * (h + 1)
            # the shape is painted where its mask is: its pixels differ
            # clearly from the ring of background around it
            ring = np.zeros_like(mask)
            ring[max(int(y) - 3, 0):int(y + h) + 4,
                 max(int(x) - 3, 0):int(x + w) + 4] = True
            inside = pixels[mask].mean(0)
            outside = pixels[ring & ~mask & ~union].mean(0)
            assert np.linalg.norm(inside - outside) > 40
    assert seen_labels == {1, 2, 3} or split == 'val'


def test_segmentation_label_maps(toy_root):
    for split, num in SEG:
        for i in range(num):
            with Image.open(toy_root / 'seg' / 'images' / split /
                            f'{i:06d}.png') as img:
                assert img.mode == 'RGB'
                size = img.size
                pixels = np.asarray(img).astype(np.int16)
            with Image.open(toy_root / 'seg' / 'annotations' / split /
                            f'{i:06d}.png') as label_img:
                assert label_img.mode == 'L'  # single channel
                assert label_img.size == size
                labels = np.asarray(label_img)
            values = set(np.unique(labels).tolist())
            # 0 background, 1-3 shapes; no ignore (255) or other values
            assert 0 in values and values - {0} and values <= {0, 1, 2, 3}
            # the labelled shapes are visible in the image
            for value in values - {0}:
                diff = pixels[labels == value].mean(0) - pixels[
                    labels == 0].mean(0)
                assert np.abs(diff).max() > 5


def test_if_missing_and_bad_arguments(tmp_path, capsys):
    args = ['--out', str(tmp_path), '--num-train', '3', '--num-val', '1']
    assert make_toy_dataset.main(args) == 0
    stamp = json.loads((tmp_path / 'toy_dataset.json').read_text())
    assert stamp['seed'] == 0 and stamp['coco/train'] == dict(
        images=3, instances=stamp['coco/train']['instances'])
    assert toy.is_complete(str(tmp_path), 0, (('train', 3), ('val', 1)),
                           (('training', 2), ('validation', 1)))
    before = digest(tmp_path)
    assert make_toy_dataset.main(args + ['--if-missing']) == 0
    assert 'already' in capsys.readouterr().out
    assert digest(tmp_path) == before
    # other settings are not "already there"
    assert not toy.is_complete(str(tmp_path), 1)
    assert make_toy_dataset.main(['--out', str(tmp_path), '--num-val',
                                  '0']) == 2
    assert '--num-val' in capsys.readouterr().err
    with pytest.raises(ValueError, match='seed'):
        toy.generate(str(tmp_path), seed=-1)
    with pytest.raises(ValueError, match="coco split 'val'"):
        toy.generate(str(tmp_path), det_splits=(('val', 0), ))


def test_quickstart_configs_read_the_toy_data(toy_root):
    from mmdet.utils import register_all_modules as mmdet_modules
    from mmengine.config import Config
    from mmengine.registry import DATASETS, init_default_scope
    from mmseg.utils import register_all_modules as mmseg_modules

    import mmdet_litv2  # noqa: F401
    import mmseg_litv2  # noqa: F401

    mmdet_modules(init_default_scope=False)
    mmseg_modules(init_default_scope=False)
    for name, scope in (('retinanet_litv2_toy', 'mmdet'),
                        ('mask_rcnn_litv2_toy', 'mmdet'),
                        ('semantic_fpn_litv2_toy', 'mmseg')):
        cfg = Config.fromfile(str(QUICKSTART / f'{name}.py'))
        init_default_scope(scope)
        for loader, size in (('train_dataloader', 0), ('test_dataloader', 1)):
            dataset_cfg = cfg[loader].dataset
            old = cfg.data_root
            assert dataset_cfg.data_root == old
            dataset_cfg.data_root = str(toy_root / Path(old).name)
            dataset = DATASETS.build(dataset_cfg)
            if scope == 'mmdet':
                assert len(dataset) == DET[size][1]
                assert dataset.metainfo['classes'] == toy.CLASSES
                item = dataset[0]
                labels = item['data_samples'].gt_instances.labels
                assert len(labels) and labels.max() < 3
                if name.startswith('mask_rcnn'):
                    masks = item['data_samples'].gt_instances.masks
                    assert masks.areas.min() > 100
            else:
                assert len(dataset) == SEG[size][1]
                assert dataset.metainfo['classes'] == toy.SEG_CLASSES
                item = dataset[0]
                seg = item['data_samples'].gt_sem_seg.data
                assert set(seg.unique().tolist()) <= {0, 1, 2, 3}
                assert (seg > 0).any()
