"""Bad data is named: faults injected into a tiny copy of the quickstart toy
data set, read through the quickstart configs' data loaders as the tools'
runner (litv2_openmmlab.engine.runner.LITv2Runner) builds them; a few
through tools/train.py and tools/test.py themselves. A config with an invalid
backbone value fails before any data is read."""
import json
import shutil
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from litv2_openmmlab.engine.runner import DatasetError, LITv2Runner
from tests.tools.test_quickstart import toy
from tools import test as test_tool
from tools import train as train_tool

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / 'configs' / 'quickstart'
DET_CFG = QUICKSTART / 'retinanet_litv2_toy.py'
SEG_CFG = QUICKSTART / 'semantic_fpn_litv2_toy.py'


@pytest.fixture(scope='module')
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('faults') / 'data' / 'toy'
    toy.generate(str(root), seed=0, det_splits=(('train', 3), ('val', 2)),
                 seg_splits=(('training', 2), ('validation', 2)))
    return root


@pytest.fixture
def data(pristine, tmp_path, monkeypatch, one_thread) -> Path:
    """A fresh copy of the toy data at ``./data/toy`` (the configs' path)."""
    shutil.copytree(pristine, tmp_path / 'data' / 'toy')
    monkeypatch.chdir(tmp_path)
    import mmdet_litv2  # noqa: F401
    import mmseg_litv2  # noqa: F401
    return tmp_path / 'data' / 'toy'


def loader(cfg_path: Path, key: str = 'train_dataloader', **dataset):
    cfg = Config.fromfile(str(cfg_path))
    init_default_scope(cfg.default_scope)
    cfg[key].dataset.update(dataset)
    return LITv2Runner.build_dataloader(cfg[key].to_dict())


def first_image(data: Path) -> Path:
    ann = json.loads((data / 'coco/annotations/instances_train.json')
                     .read_text())
    return data / 'coco/train' / ann['images'][0]['file_name']


# ----------------------------------------------------------- images ----
def test_missing_image_is_named(data):
    path = first_image(data)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=str(path.name)):
        next(iter(loader(DET_CFG)))


@pytest.mark.parametrize('content', [b'not an image', b'\x89PNG\r\n\x1a\n'])
def test_corrupt_image_is_named(data, content):
    path = first_image(data)
    path.write_bytes(content)  # garbage / a truncated PNG
    with pytest.raises(Exception, match=f'failed to load image.*{path.name}'):
        next(iter(loader(DET_CFG)))


def test_annotation_of_a_missing_image_is_named(data):
    ann_path = data / 'coco/annotations/instances_train.json'
    ann = json.loads(ann_path.read_text())
    ann['images'].append(dict(id=999, file_name='ghost.png', height=64,
                              width=64))
    ann['annotations'].append(dict(
        id=9999, image_id=999, category_id=ann['categories'][0]['id'],
        bbox=[4, 4, 20, 20], area=400, iscrowd=0))
    ann_path.write_text(json.dumps(ann))
    with pytest.raises(FileNotFoundError, match='ghost.png'):
        next(iter(loader(DET_CFG)))  # one batch holds all four images


def test_missing_segmentation_map_is_named(data):
    path = sorted((data / 'seg/annotations/training').iterdir())[0]
    path.unlink()
    with pytest.raises(FileNotFoundError, match=path.name):
        next(iter(loader(SEG_CFG)))  # one batch holds both images


# ----------------------------------------------------- annotations ----
@pytest.mark.parametrize('change', ['no annotations', 'no images'])
def test_empty_annotation_list_is_named(data, change):
    ann_path = data / 'coco/annotations/instances_train.json'
    ann = json.loads(ann_path.read_text())
    ann['annotations'] = []
    if change == 'no images':
        ann['images'] = []
    ann_path.write_text(json.dumps(ann))
    # mmengine alone: "need at least one array to concatenate"
    with pytest.raises(DatasetError,
                       match=r"instances_train.json.*has no samples.*"
                             r"filter_empty_gt"):
        loader(DET_CFG)


def test_unreadable_annotation_file_is_named(data):
    (data / 'coco/annotations/instances_train.json').write_text('{"images": [')
    with pytest.raises(DatasetError,
                       match=r'instances_train.json.*JSONDecodeError'):
        loader(DET_CFG)


def test_segmentation_set_without_images_is_named(data):
    with pytest.raises(DatasetError, match=r"img_suffix='.jpg'.*no samples"):
        loader(SEG_CFG, img_suffix='.jpg')  # the toy images are .png


# -------------------------------------------------------- data_root ----
@pytest.mark.parametrize('cfg_path,missing', [
    (DET_CFG, 'nowhere/annotations/instances_train.json'),
    (SEG_CFG, 'nowhere/images/training'),
])
def test_wrong_data_root_is_named(data, cfg_path, missing):
    with pytest.raises(DatasetError,
                       match=f"data_root='nowhere/?'.*{missing}"):
        loader(cfg_path, data_root='nowhere/' if cfg_path == DET_CFG
               else 'nowhere')


def test_tools_name_a_wrong_data_root(data, tmp_path):
    train, test = train_tool, test_tool
    with pytest.raises(DatasetError, match='no/such/root'):
        train.main([str(DET_CFG), '--work-dir', str(tmp_path / 'w'),
                    '--cfg-options',
                    'train_dataloader.dataset.data_root=no/such/root/'])
    checkpoint = tmp_path / 'empty.pth'
    torch.save(dict(state_dict={}, meta={}), checkpoint)
    with pytest.raises(DatasetError, match='no/such/root'):
        test.main([str(SEG_CFG), str(checkpoint), '--work-dir',
                   str(tmp_path / 'w'), '--cfg-options',
                   'test_dataloader.dataset.data_root=no/such/root'])


# ------------------------------------------- invalid backbone values ----
@pytest.mark.parametrize('option,word', [
    ('model.backbone.alpha=1.5', 'alpha'),
    ('model.backbone.local_ws=[0,0,-2,1]', r'local_ws\[2\]'),
    ('model.backbone.num_heads=[1,2,5,8]', r'num_heads\[2\]'),
])
def test_invalid_backbone_value_fails_before_data_is_read(data, tmp_path,
                                                          option, word):
    # the data root does not exist: reading any data would fail with a
    # DatasetError instead of the backbone's ValueError
    train = train_tool
    with pytest.raises(ValueError, match=word) as info:
        train.main([str(DET_CFG), '--work-dir', str(tmp_path / 'w'),
                    '--cfg-options', option,
                    'train_dataloader.dataset.data_root=no/such/root/'])
    assert not isinstance(info.value, DatasetError)
