"""CheckedCocoDataset (litv2_openmmlab/datasets/checked_coco.py): a COCO file
with one annotation of each fault is read with mmdet's decisions, partly
outside boxes clipped, and one log line counting each kind with its ids; a
clean file logs nothing; strict_annotations=True refuses the file in one
line; the project's detection configs use it for their train, val and test
sets, and tools/train.py on the quickstart prints the summary."""
import json
import logging
import re
import shutil
import uuid
from pathlib import Path

import pytest
from mmdet.datasets import CocoDataset
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import mmdet_litv2  # noqa: F401  (registers CheckedCocoDataset)
from litv2_openmmlab.datasets import checked_coco
from litv2_openmmlab.datasets import toy_shapes as toy
from litv2_openmmlab.datasets.checked_coco import (
    AnnotationError,
    CheckedCocoDataset,
)

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / 'configs' / 'quickstart'
DETECTION_CONFIGS = sorted(
    [p.name for p in (REPO / 'configs').glob('retinanet_litv2_*.py')]
    + [p.name for p in (REPO / 'configs').glob('mask_rcnn_litv2_*.py')]
    + ['quickstart/retinanet_litv2_toy.py',
       'quickstart/mask_rcnn_litv2_toy.py'])

W, H = 153, 100  # the image of the partly-outside box


def ann(id_, image_id, bbox, category_id=1, **extra):
    record = dict(id=id_, image_id=image_id, category_id=category_id,
                  bbox=bbox, area=bbox[2] * bbox[3], iscrowd=0)
    record.update(extra)
    return record


# one annotation of each kind; expected kind -> ids
FAULTY = [
    ann(1, 1, [10, 10, 30, 30]),                       # kept as it is
    ann(2, 1, [200, 10, 20, 20]),                      # wholly outside
    ann(3, 1, [10, 10, -5, 20]),                       # negative width
    ann(4, 1, [10, 10, 20, 20], category_id=2, area=0),
    ann(5, 1, [10, 10, 20, 20], category_id=99),       # not in the file
    ann(6, 1, [24.07, 49.92, 400, 32.45], category_id=2),  # partly outside
    ann(7, 1, [10, 10, 0.5, 20]),                      # below 1 px
    ann(8, 1, [10, 10, 20, 20], ignore=True),
    ann(9, 1, [-5, -5, 30, 30], iscrowd=1),            # crowd, partly out
    ann(10, 2, [0, 150, 20, 20]),                      # below the image
    ann(11, 1, [10, 10, 20, 20], category_id=3),       # class left out
    ann(12, 4, [10, 10, 20, 20], category_id=3),
]
EXPECTED = {
    'ignore': [8], 'nonpositive_size': [3], 'outside': [2, 10],
    'zero_area': [4], 'subpixel_size': [7], 'unknown_category': [5],
    'other_category': [11, 12], 'clipped': [6, 9], 'no_box_kept': [2],
    'no_annotations': [3, 4], 'filtered': [3, 4],
}
CLASSES = ('a', 'b')  # the file also has 'c' (id 3)


def write_coco(path: Path, annotations, num_images=4) -> Path:
    images = [dict(id=i, file_name=f'{i}.png', width=W, height=H)
              for i in range(1, num_images + 1)]
    categories = [dict(id=i, name=n) for i, n in enumerate('abc', 1)]
    path.write_text(json.dumps(dict(images=images, annotations=annotations,
                                    categories=categories)))
    return path


def build(ann_file: Path, dataset_type=CheckedCocoDataset, **kwargs):
    kwargs.setdefault('filter_cfg', dict(filter_empty_gt=True))
    return dataset_type(ann_file=str(ann_file), metainfo=dict(classes=CLASSES),
                        data_prefix=dict(img=''), pipeline=[], **kwargs)


class Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def summaries(self, ann_file) -> list:
        return [r for r in self.records
                if r.getMessage().startswith(f'annotations of {ann_file}')]


@pytest.fixture
def log():
    """The records of a fresh current MMLogger (``print_log(logger=
    'current')`` writes to the newest instance)."""
    logger = MMLogger.get_instance(f'checked_coco_{uuid.uuid4().hex}')
    lines = Lines()
    logger.addHandler(lines)
    yield lines
    logger.removeHandler(lines)


@pytest.fixture
def faulty(tmp_path) -> Path:
    return write_coco(tmp_path / 'faulty.json', FAULTY)


def test_each_kind_counted_and_logged_once_with_its_ids(faulty, log):
    dataset = build(faulty)
    audit = dataset.annotation_audit
    assert {k: v for k, v in audit.ids.items() if v} == EXPECTED
    assert {k: n for k, n in audit.counts.items() if n} == {
        k: len(v) for k, v in EXPECTED.items()}
    dataset.full_init()  # again: nothing more
    len(dataset), dataset[0]
    [record] = log.summaries(faulty)
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        f'annotations of {faulty} (4 images, 12 annotations): '
        "dropped, 'ignore' set: 1 (ann 8); "
        'dropped, width or height <= 0: 1 (ann 3); '
        'dropped, box wholly outside the image: 2 (ann 2, 10); '
        "dropped, 'area' <= 0: 1 (ann 4); "
        'dropped, width or height below 1 px: 1 (ann 7); '
        "dropped, category_id not in the file's categories: 1 (ann 5); "
        "dropped, category not in metainfo's classes: 2 (ann 11, 12); "
        'clipped, box partly outside the image: 2 (ann 6, 9); '
        'images whose every box was dropped: 1 (image 2); '
        'images without annotations of the classes: 2 (image 3, 4); '
        'images removed by filter_cfg: 2 (image 3, 4)')
    assert '\n' not in record.getMessage()


def test_first_ids_only(tmp_path, log):
    outside = [ann(i, 1, [500, 10, 20, 20]) for i in range(1, 9)]
    path = write_coco(tmp_path / 'many.json',
                      outside + [ann(9, 1, [1, 1, 20, 20])], num_images=1)
    build(path)
    [record] = log.summaries(path)
    assert ('dropped, box wholly outside the image: 8 (ann 1, 2, 3, 4, 5, '
            '...)') in record.getMessage()


def test_mmdets_decisions_kept_and_partly_outside_boxes_clipped(faulty):
    checked = build(faulty)
    plain = build(faulty, dataset_type=CocoDataset)
    assert ([d['img_id'] for d in checked] == [d['img_id'] for d in plain]
            == [1, 2])  # images 3 and 4 removed by filter_empty_gt
    mine, theirs = (checked.get_data_info(0)['instances'],
                    plain.get_data_info(0)['instances'])
    assert ([(i['bbox_label'], i['ignore_flag']) for i in mine]
            == [(i['bbox_label'], i['ignore_flag']) for i in theirs]
            == [(0, 0), (1, 0), (0, 1)])  # annotations 1, 6, 9
    assert flat(theirs) == pytest.approx(
        [10, 10, 40, 40, 24.07, 49.92, 424.07, 82.37, -5, -5, 25, 25])
    assert flat(mine) == pytest.approx(
        [10, 10, 40, 40, 24.07, 49.92, W, 82.37, 0, 0, 25, 25])
    assert checked.get_data_info(1)['instances'] == []  # image 2


def flat(instances) -> list:
    return [v for inst in instances for v in inst['bbox']]


def test_strict_refuses_the_file_in_one_line(faulty):
    with pytest.raises(AnnotationError) as info:
        build(faulty, strict_annotations=True)
    message = str(info.value)
    assert '\n' not in message
    assert message.startswith(f'{faulty}: 9 annotations / images fail')
    assert 'dropped, box wholly outside the image: 2 (ann 2, 10)' in message
    assert 'clipped, box partly outside the image: 2 (ann 6, 9)' in message
    # deliberate ones are not faults
    assert 'ignore' not in message and 'filter_cfg' not in message
    assert "metainfo's classes" not in message


def test_strict_accepts_deliberate_drops(tmp_path, log):
    path = write_coco(tmp_path / 'deliberate.json', [
        ann(1, 1, [1, 1, 20, 20]), ann(2, 1, [1, 1, 20, 20], ignore=True),
        ann(3, 1, [1, 1, 20, 20], category_id=3)], num_images=2)
    dataset = build(path, strict_annotations=True)
    assert len(dataset) == 1
    [record] = log.summaries(path)
    assert record.levelno == logging.INFO  # nothing to warn about


@pytest.mark.parametrize('value', [1, 'yes', None])
def test_strict_must_be_a_bool(faulty, value):
    with pytest.raises(TypeError, match='strict_annotations'):
        build(faulty, strict_annotations=value)


# (an annotation without category_id fails in pycocotools' COCO() already)
@pytest.mark.parametrize('key', ['bbox', 'area'])
def test_a_missing_key_is_named(tmp_path, key):
    record = ann(7, 1, [1, 1, 20, 20])
    del record[key]
    path = write_coco(tmp_path / 'missing.json', [record], num_images=1)
    with pytest.raises(AnnotationError, match='^' + re.escape(
            f"{path}: annotation 7 has no '{key}'")):
        build(path)


def test_an_image_without_width_is_named(tmp_path):
    path = write_coco(tmp_path / 'nowidth.json', [ann(1, 1, [1, 1, 5, 5])],
                      num_images=1)
    coco = json.loads(path.read_text())
    del coco['images'][0]['width']
    path.write_text(json.dumps(coco))
    with pytest.raises(AnnotationError, match='^' + re.escape(
            f"{path}: image 1 has no number 'width'")):
        build(path)


def test_disagreeing_with_mmdet_is_an_error(faulty, monkeypatch):
    # a reading of the rules that keeps more than mmdet does must not pass
    monkeypatch.setattr(CheckedCocoDataset, '_drop_kind',
                        lambda self, ann, img: None)
    with pytest.raises(RuntimeError, match='disagree with mmdet'):
        build(faulty)


@pytest.fixture(scope='module')
def toy_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('checked') / 'data' / 'toy'
    toy.generate(str(root), seed=0, det_splits=(('train', 3), ('val', 2)),
                 seg_splits=(('training', 1), ('validation', 1)))
    return root


@pytest.fixture
def toy_here(toy_data, tmp_path, monkeypatch) -> Path:
    """A copy of the toy data at ``./data/toy`` (the quickstart's path)."""
    shutil.copytree(toy_data, tmp_path / 'data' / 'toy')
    monkeypatch.chdir(tmp_path)
    return tmp_path / 'data' / 'toy'


def loader(key: str, **dataset):
    """The quickstart RetinaNet's data loader ``key``, as a runner builds
    it."""
    cfg = Config.fromfile(str(QUICKSTART / 'retinanet_litv2_toy.py'))
    init_default_scope(cfg.default_scope)
    cfg[key].dataset.update(dataset)
    return Runner.build_dataloader(cfg[key].to_dict())


def spoil(toy_root: Path) -> tuple:
    """An annotation wholly outside its image and one partly outside."""
    path = toy_root / 'coco/annotations/instances_train.json'
    coco = json.loads(path.read_text())
    image = coco['images'][0]
    coco['annotations'] += [
        ann(901, image['id'], [image['width'] + 5, 5, 20, 20]),
        ann(902, image['id'], [image['width'] - 10, 5, 20, 20])]
    path.write_text(json.dumps(coco))
    return path, image


def test_clean_toy_data_logs_nothing(toy_here, log):
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = loader(key).dataset
        assert isinstance(dataset, CheckedCocoDataset)
        assert not any(dataset.annotation_audit.counts.values())
    assert not [r for r in log.records
                if r.getMessage().startswith('annotations of')]


def test_quickstart_loader_reports_and_strict_refuses(toy_here, log):
    path, image = spoil(toy_here)
    dataset = loader('train_dataloader').dataset
    [record] = log.summaries('data/toy/coco/annotations/instances_train.json')
    assert ('dropped, box wholly outside the image: 1 (ann 901); '
            'clipped, box partly outside the image: 1 (ann 902)'
            ) in record.getMessage()
    boxes = [i['bbox'] for i in dataset.get_data_info(0)['instances']]
    assert boxes[-1] == [image['width'] - 10, 5, image['width'], 25]

    with pytest.raises(AnnotationError) as info:
        loader('train_dataloader', strict_annotations=True)
    assert '\n' not in str(info.value)
    assert str(info.value).startswith(
        'data/toy/coco/annotations/instances_train.json: 2 annotations / '
        'images fail')


@pytest.mark.parametrize('name', DETECTION_CONFIGS)
def test_detection_configs_check_their_annotations(name):
    cfg = Config.fromfile(str(REPO / 'configs' / name))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[key].dataset
        assert dataset.type == 'CheckedCocoDataset', key
        assert dataset.ann_file and dataset.data_root  # the base's, kept


def test_plugin_registers_the_dataset():
    from mmdet.registry import DATASETS
    assert DATASETS.get('CheckedCocoDataset') is CheckedCocoDataset
    assert checked_coco.SHOWN_IDS == 5


def test_tools_train_prints_the_summary(toy_here, tmp_path, capsys):
    from tools import train as train_tool
    spoil(toy_here)
    train_tool.main([
        str(QUICKSTART / 'retinanet_litv2_toy.py'),
        '--work-dir', str(tmp_path / 'work'), '--cfg-options',
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2'])
    lines = [line for line in capsys.readouterr().out.splitlines()
             if 'annotations of data/toy/coco/annotations/' in line]
    assert len(lines) == 1, lines
    assert 'WARNING' in lines[0]
    assert ('instances_train.json (3 images, ' in lines[0]
            and 'dropped, box wholly outside the image: 1 (ann 901); '
            'clipped, box partly outside the image: 1 (ann 902)' in lines[0])


def test_tools_train_strict_stops_in_one_line(toy_here, tmp_path):
    from litv2_openmmlab.engine.runner import DatasetError
    from tools import train as train_tool
    spoil(toy_here)
    with pytest.raises(DatasetError) as info:
        train_tool.main([
            str(QUICKSTART / 'retinanet_litv2_toy.py'),
            '--work-dir', str(tmp_path / 'work'), '--cfg-options',
            'train_dataloader.dataset.strict_annotations=True'])
    message = str(info.value)  # what tools/train.py prints, after the type
    assert '\n' not in message
    assert message.startswith('cannot build CheckedCocoDataset(')
    assert ('AnnotationError: data/toy/coco/annotations/instances_train.json'
            ': 2 annotations / images fail the checks') in message
    assert '(ann 901)' in message and '(ann 902)' in message
