"""tools/infer.py on the quickstart configs (RetinaNet, Mask R-CNN, Semantic
FPN) with small random-weight checkpoints, on a few toy images, on the CPU:
what the drawn pictures show is checked against the predictions written
beside them (a box's edges in its class colour where the box is, the label
map's colours where the label map says), and the failure paths: an
unreadable image, a checkpoint that does not fit, an unsafe checkpoint.
"""
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from litv2_openmmlab.datasets import toy_shapes as toy
from tools import infer, quickstart

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / 'configs' / 'quickstart'
RETINANET = QUICKSTART / 'retinanet_litv2_toy.py'
MASK_RCNN = QUICKSTART / 'mask_rcnn_litv2_toy.py'
SEMANTIC_FPN = QUICKSTART / 'semantic_fpn_litv2_toy.py'


@pytest.fixture(scope='module', autouse=True)
def one_thread_module():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def images(tmp_path_factory) -> Path:
    """Three toy validation images (detection part of the toy data set)."""
    root = tmp_path_factory.mktemp('toy')
    toy.generate(str(root / 'toy'), seed=0, det_splits=(('val', 3), ),
                 seg_splits=(('validation', 1), ))
    return root / 'toy' / 'coco' / 'val'


def random_checkpoint(config: Path, path: Path, seed: int = 0) -> Path:
    """The config's model, initialised as for training (random weights), saved
    as the runner saves checkpoints: state dict and the data set's classes
    and palette."""
    cfg = Config.fromfile(str(config))
    task = cfg.default_scope
    if task == 'mmdet':
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules

        import mmdet_litv2  # noqa: F401
    else:
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules

        import mmseg_litv2  # noqa: F401
    register_all_modules(init_default_scope=False)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    meta = cfg.test_dataloader.dataset.metainfo
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(
                        classes=list(meta['classes']),
                        palette=[list(c) for c in meta['palette']]))), path)
    return path


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp('checkpoints')
    return {cfg.stem: random_checkpoint(cfg, root / f'{cfg.stem}.pth')
            for cfg in (RETINANET, MASK_RCNN, SEMANTIC_FPN)}


def rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert('RGB')).astype(np.float32)


def run(*args) -> int:
    return infer.main([str(a) for a in args])


def top_one(config, image, checkpoint, out):
    """Run once to read the predictions, then again with a score threshold
    between the best and the second best, so that exactly one is drawn;
    return (that prediction, its drawn picture, the input). (The random
    heads score every box low: the config's test threshold is lifted.)"""
    thr = ('model.test_cfg.score_thr=0' if config == RETINANET else
           'model.test_cfg.rcnn.score_thr=0')
    assert run(image, config, '--weights', checkpoint, '--out-dir',
               out / 'all', '--cfg-options', thr) == 0
    result = json.loads((out / 'all' / 'preds' / f'{image.stem}.json')
                        .read_text())
    scores = result['scores']
    assert scores == sorted(scores, reverse=True) and len(scores) >= 2
    assert len(result['bboxes']) == len(result['labels']) == len(scores)
    threshold = (scores[0] + scores[1]) / 2
    assert scores[0] > threshold > scores[1]
    assert run(image, config, '--weights', checkpoint, '--out-dir',
               out / 'one', '--pred-score-thr', threshold, '--cfg-options',
               thr) == 0
    one = {key: value[0] for key, value in result.items()}
    return one, rgb(out / 'one' / 'vis' / image.name), rgb(image)


def expected_colour(label, config):
    palette = Config.fromfile(str(config)).test_dataloader.dataset.metainfo[
        'palette']
    return np.array(palette[label], np.float32)


def test_retinanet_draws_each_box_where_the_prediction_is(
        images, checkpoints, tmp_path):
    image = images / '000000.png'
    pred, drawn, original = top_one(RETINANET, image,
                                     checkpoints['retinanet_litv2_toy'],
                                     tmp_path)
    assert drawn.shape == original.shape
    x1, y1, x2, y2 = (int(round(v)) for v in pred['bboxes'])
    assert x2 - x1 >= 8 and y2 - y1 >= 8, pred['bboxes']
    colour = expected_colour(pred['labels'], RETINANET)
    # the box's bottom, left and right edges (the label's text sits at the
    # top) carry its class colour, blended over the image
    edges = [(y2, (x1 + x2) // 2), ((y1 + y2) // 2, x1),
             ((y1 + y2) // 2, x2)]
    for y, x in edges:
        y, x = min(y, drawn.shape[0] - 1), min(x, drawn.shape[1] - 1)
        blend = 0.8 * colour + 0.2 * original[y, x]
        assert np.abs(drawn[y, x] - blend).max() < 30, (y, x, drawn[y, x],
                                                        blend)
    # away from the box, the image is unchanged
    changed = np.abs(drawn - original).max(-1) > 0
    outside = np.ones(changed.shape, bool)
    outside[max(y1 - 30, 0):y2 + 4, max(x1 - 4, 0):x2 + 60] = False
    assert not changed[outside].any()
    assert changed[~outside].any()


def test_mask_rcnn_draws_the_mask_it_predicts(images, checkpoints,
                                               tmp_path):
    """With random weights the mask head paints a sieve of holes; here its
    logits are shifted up so that each predicted mask is one solid region
    (its box, as pasted from the head's 28 x 28 output)."""
    from pycocotools import mask as mask_utils
    state = torch.load(checkpoints['mask_rcnn_litv2_toy'], weights_only=True)
    state['state_dict']['roi_head.mask_head.conv_logits.bias'] += 20
    # proposals: every anchor (at least 32 px a side) grown 2.5 times, with
    # no further box regression, so that the best box is large
    weights = state['state_dict']
    for key in ('rpn_head.rpn_reg', 'roi_head.bbox_head.fc_reg'):
        for leaf in ('weight', 'bias'):
            weights[f'{key}.{leaf}'].zero_()
    weights['rpn_head.rpn_reg.bias'].view(-1, 4)[:, 2:] = math.log(2.5)
    checkpoint = tmp_path / 'solid_masks.pth'
    torch.save(state, checkpoint)
    # the first image whose best prediction is large enough to look inside
    # (which one depends on the random weights)
    for image in sorted(images.glob('*.png'))[:6]:
        pred, drawn, original = top_one(MASK_RCNN, image, checkpoint,
                                        tmp_path / image.stem)
        x1, y1, x2, y2 = (int(round(v)) for v in pred['bboxes'])
        if x2 - x1 >= 40 and y2 - y1 >= 40:
            break
    assert x2 - x1 >= 40 and y2 - y1 >= 40, pred['bboxes']
    rle = pred['masks']
    assert rle['size'] == list(original.shape[:2])
    mask = mask_utils.decode(dict(size=rle['size'],
                                  counts=rle['counts'].encode())).astype(bool)
    ys, xs = np.nonzero(mask)
    assert abs(xs.min() - x1) <= 1 and abs(xs.max() + 1 - x2) <= 1
    assert abs(ys.min() - y1) <= 1 and abs(ys.max() + 1 - y2) <= 1
    # the mask, 3 px in from its white outline and the box's edges and
    # below the label, is painted in one colour: the class's (mmdet jitters
    # a mask's colour by up to 64 per channel), at opacity 0.8
    inner = mask.copy()
    for axis in (0, 1):
        for shift in (-3, 3):
            inner &= np.roll(mask, shift, axis=axis)
    inner[:y1 + 20] = False
    assert inner.sum() > 500
    painted = (drawn[inner] - 0.2 * original[inner]) / 0.8
    assert painted.std(0).max() < 2, painted.std(0)
    colour = expected_colour(pred['labels'], MASK_RCNN)
    assert np.abs(painted.mean(0) - colour).max() <= 64
    # elsewhere the image is unchanged
    change = np.abs(drawn - original).max(-1)
    outside = np.ones(mask.shape, bool)
    outside[max(y1 - 30, 0):y2 + 4, max(x1 - 4, 0):x2 + 60] = False
    assert not (change > 0)[outside].any()


def test_semantic_fpn_draws_its_label_map(images, checkpoints, tmp_path):
    out = tmp_path / 'out'
    assert run(images, SEMANTIC_FPN, '--weights',
               checkpoints['semantic_fpn_litv2_toy'], '--out-dir', out,
               '--opacity', 0.5) == 0
    palette = np.array(Config.fromfile(str(SEMANTIC_FPN))
                       .test_dataloader.dataset.metainfo['palette'],
                       np.float32)
    for image in sorted(images.glob('*.png')):
        labels = np.asarray(Image.open(out / 'preds' / image.name))
        original = rgb(image)
        assert labels.shape == original.shape[:2]  # the input's size
        assert labels.max() < len(palette)
        drawn = rgb(out / 'vis' / image.name)
        blend = 0.5 * original + 0.5 * palette[labels]
        close = np.abs(drawn - blend).max(-1) <= 2
        # class names are written over some pixels
        assert close.mean() > 0.9, close.mean()


@pytest.mark.slow
def test_unreadable_image_is_named_and_skipped(images, checkpoints,
                                               tmp_path):
    folder = tmp_path / 'inputs'
    shutil.copytree(images, folder)
    (folder / '000001.png').write_bytes(b'not an image')
    (folder / 'notes.txt').write_text('not an image, not listed')
    out = tmp_path / 'out'
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    proc = subprocess.run([
        sys.executable, REPO / 'tools' / 'infer.py', folder, RETINANET,
        '--weights', checkpoints['retinanet_litv2_toy'], '--out-dir', out,
        '--batch-size', '2', '--device', 'cpu'
    ], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f'skipped {folder / "000001.png"}: cannot read it' in proc.stderr
    assert 'FAILED: 1 of 3 images could not be read' in proc.stderr
    assert sorted(p.name for p in (out / 'vis').iterdir()) == [
        '000000.png', '000002.png']
    assert sorted(p.name for p in (out / 'preds').iterdir()) == [
        '000000.json', '000002.json']
    assert f'drawn images: {out}/vis/' in proc.stdout


def test_glob_names_outputs_by_relative_path(images, checkpoints, tmp_path):
    for sub in ('a', 'b'):
        shutil.copytree(images, tmp_path / 'in' / sub)
    out = tmp_path / 'out'
    assert run(f'{tmp_path}/in/*/00000[01].png', RETINANET, '--weights',
               checkpoints['retinanet_litv2_toy'], '--out-dir', out,
               '--no-save-vis') == 0
    assert not (out / 'vis').exists()
    assert sorted(str(p.relative_to(out / 'preds'))
                  for p in (out / 'preds').rglob('*.json')) == [
                      'a/000000.json', 'a/000001.json', 'b/000000.json',
                      'b/000001.json']


def test_checkpoint_must_fit_the_model(images, checkpoints, tmp_path,
                                       capsys):
    state = torch.load(checkpoints['retinanet_litv2_toy'], weights_only=True)
    weights = state['state_dict']
    del weights['bbox_head.retina_cls.bias']
    weights['bbox_head.extra.weight'] = torch.zeros(1)
    weights['backbone.patch_embed.proj.weight'] = torch.zeros(1, 2)
    bad = tmp_path / 'bad.pth'
    torch.save(state, bad)
    out = tmp_path / 'out'
    assert run(images / '000000.png', RETINANET, '--weights', bad,
               '--out-dir', out) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"checkpoint '{bad}' does not fit the model" in err
    assert '1 missing from the file (bbox_head.retina_cls.bias)' in err
    assert '1 not in the model (bbox_head.extra.weight)' in err
    assert ('1 of another shape (backbone.patch_embed.proj.weight: file (1, 2)'
            in err)
    assert not out.exists()


class _Exploit:
    def __reduce__(self):
        return (os.system, ('touch /tmp/litv2_infer_exploit',))


def test_checkpoint_is_read_as_data_only(images, tmp_path, capsys):
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _Exploit()}, evil)
    marker = Path('/tmp/litv2_infer_exploit')
    marker.unlink(missing_ok=True)
    assert run(images / '000000.png', RETINANET, '--weights', evil,
               '--out-dir', tmp_path / 'out') == 1
    err = capsys.readouterr().err
    assert f"UnsafeCheckpointError: checkpoint '{evil}' refused" in err
    assert not marker.exists()


def test_inputs_that_name_no_image(tmp_path, capsys):
    assert run(tmp_path / 'missing.png', RETINANET) == 2
    assert 'neither a file, a folder nor a glob' in capsys.readouterr().err
    (tmp_path / 'empty').mkdir()
    assert run(tmp_path / 'empty', RETINANET) == 2
    assert 'holds no image file' in capsys.readouterr().err
    assert run(f'{tmp_path}/*.jpg', RETINANET) == 2
    assert 'matches no image file' in capsys.readouterr().err


def test_quickstart_pictures_put_predictions_beside_ground_truth(
        images, checkpoints, tmp_path):
    """The last step of make demo (tools/quickstart.py): tools/infer.py's
    picture of each toy validation image on the right, its ground truth drawn
    on the left."""
    data = images.parents[1]  # the toy data set: coco/val/, coco/annotations/
    pictures = tmp_path / 'pictures'
    inputs = quickstart.validation_images(str(RETINANET), str(data), 2,
                                          str(pictures / 'inputs'))
    assert sorted(os.listdir(inputs)) == ['000000.png', '000001.png']
    assert run(inputs, RETINANET, '--weights',
               checkpoints['retinanet_litv2_toy'], '--out-dir',
               pictures / 'infer') == 0
    quickstart.side_by_side(str(RETINANET), str(data), str(pictures), [])
    assert (pictures / 'overview.png').is_file()
    coco = json.loads((data / 'coco' / 'annotations' /
                       'instances_val.json').read_text())
    for info in coco['images'][:2]:
        name = info['file_name']
        row = rgb(pictures / name)
        prediction = rgb(pictures / 'infer' / 'vis' / name)
        original = rgb(images / name)
        h, w = original.shape[:2]
        caption = 16  # the white strip above each half
        assert np.array_equal(row[caption:caption + h, -w:], prediction)
        truth = row[caption:caption + h, :w]
        boxes = [a for a in coco['annotations']
                 if a['image_id'] == info['id']]
        assert boxes
        for box in boxes:  # each annotated box's bottom edge in its colour
            x, y, bw, bh = box['bbox']
            yy, xx = min(int(round(y + bh)), h - 1), int(round(x + bw / 2))
            colour = expected_colour(box['category_id'] - 1, RETINANET)
            blend = 0.8 * colour + 0.2 * original[yy, xx]
            assert np.abs(truth[yy, xx] - blend).max() < 30


def test_best_prediction_is_drawn_last():
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    pred = DetDataSample(pred_instances=InstanceData(
        scores=torch.tensor([0.9, 0.5, 0.7]), labels=torch.tensor([0, 1, 2]),
        bboxes=torch.zeros(3, 4)))
    drawn = infer.Outputs._best_on_top(pred)
    assert drawn.pred_instances.labels.tolist() == [1, 2, 0]
    assert pred.pred_instances.labels.tolist() == [0, 1, 2]  # not changed
