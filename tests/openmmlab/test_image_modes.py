"""Gray and RGBA images go through the quickstart pipelines: mmcv's
LoadImageFromFile (color_type='color', cv2) turns a gray PNG into three equal
channels and drops an RGBA PNG's alpha, so the packed input has 3 channels
and the model runs on it. The paper configs use the same loader."""
import shutil

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from tests.openmmlab.test_data_faults import DET_CFG, SEG_CFG, loader
from tests.tools.test_quickstart import toy


@pytest.fixture(scope='module')
def toy_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('modes')
    toy.generate(str(root / 'data' / 'toy'), seed=0,
                 det_splits=(('train', 2), ('val', 2)),
                 seg_splits=(('training', 2), ('validation', 2)))
    return root


def inputs_by_name(batches):
    return {sample.img_path.split('/')[-1]: img for batch in batches
            for sample, img in zip(batch['data_samples'], batch['inputs'])}


def _model(cfg_path):
    cfg = Config.fromfile(str(cfg_path))
    init_default_scope(cfg.default_scope)
    from mmengine.registry import MODELS
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('cfg_path,images', [
    (DET_CFG, 'coco/val'), (SEG_CFG, 'seg/images/validation')])
def test_gray_and_rgba_images_give_three_channels(toy_data, tmp_path,
                                                  monkeypatch, one_thread,
                                                  cfg_path, images):
    shutil.copytree(toy_data / 'data', tmp_path / 'data')
    monkeypatch.chdir(tmp_path)
    import mmdet_litv2  # noqa: F401
    import mmseg_litv2  # noqa: F401
    folder = tmp_path / 'data' / 'toy' / images
    gray_path, rgba_path = sorted(folder.iterdir())[:2]
    rgb = np.asarray(Image.open(rgba_path).convert('RGB'))
    Image.open(gray_path).convert('L').save(gray_path)
    alpha = np.full(rgb.shape[:2] + (1, ), 77, np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], -1), 'RGBA').save(rgba_path)
    assert Image.open(gray_path).mode == 'L'
    assert Image.open(rgba_path).mode == 'RGBA'

    # the test pipeline has no random step: compare with the RGB original
    batches = list(loader(cfg_path, 'val_dataloader'))
    by_name = inputs_by_name(batches)
    gray, rgba = by_name[gray_path.name], by_name[rgba_path.name]
    assert gray.shape[0] == 3 and rgba.shape[0] == 3
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    Image.fromarray(rgb).save(rgba_path)  # the same pixels without alpha
    plain = inputs_by_name(loader(cfg_path, 'val_dataloader'))
    assert torch.equal(rgba, plain[rgba_path.name])

    with torch.no_grad():
        model = _model(cfg_path)
        results = [r for batch in batches for r in model.test_step(batch)]
    assert len(results) == len(by_name)
    if cfg_path == SEG_CFG:
        for result in results:
            assert result.pred_sem_seg.shape == result.ori_shape
