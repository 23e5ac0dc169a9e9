"""Any image size works: the backbone, RetinaNet, Mask R-CNN (the paper's
configs) and Semantic FPN give outputs of the right shape from 32x32 to
2000x3000, for sides that are not multiples of 4, 32 or the HiLo window, and
for very thin images. A tiny-width LITv2 (tests.utils.tiny_kwargs) and thin
necks/heads keep the large sizes fast; the shapes do not depend on width."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from litv2_openmmlab import LITv2
from tests.tiny_data import CONFIGS
from tests.utils import tiny_kwargs

# (height, width): square, odd (not multiples of 4 / 32 / the window),
# very thin both ways, and large
SIZES = [(32, 32), (33, 47), (97, 133), (64, 1500), (1500, 64), (2000, 3000)]
NECK = 16  # channels of the thin FPN and heads
# an even smaller LITv2 inside the detectors and the segmentor (the large
# sizes cost seconds): widths 8-64, one block per stage, still one Lo-Fi and
# one Hi-Fi head in stage 3
MODEL_BACKBONE = tiny_kwargs(embed_dim=8, depths=(1, 1, 1, 1),
                             num_heads=(1, 1, 2, 1))


pytestmark = pytest.mark.usefixtures('one_thread')


def expected_stage_shapes(height: int, width: int, stages: int = 4):
    """The patch embedding pads to a multiple of 4 (ceil); each DTM halves
    a side, dropping an odd last row/column (floor), but keeps at least 1."""
    h, w = -(-height // 4), -(-width // 4)
    shapes = [(h, w)]
    for _ in range(stages - 1):
        h, w = max(h // 2, 1), max(w // 2, 1)
        shapes.append((h, w))
    return shapes


@pytest.mark.parametrize('window,sizes', [
    (2, SIZES + [(5, 3), (31, 31)]),
    (3, SIZES[:-1]),  # a window that divides none of the sides
])
def test_backbone_output_shapes(window, sizes):
    model = LITv2(**tiny_kwargs(local_ws=(0, 0, window, 1))).eval()
    for size in sizes:
        with torch.no_grad():
            outs = model(torch.randn(1, 3, *size))
        assert [tuple(o.shape[2:]) for o in outs] == \
            expected_stage_shapes(*size), size
        assert [o.shape[1] for o in outs] == [16, 32, 64, 128]
        assert all(torch.isfinite(o).all() for o in outs), size


def _tiny(cfg: Config) -> Config:
    """Tiny backbone, thin neck, two classes: the config's structure kept."""
    cfg.model.backbone.update(
        {k: list(v) if isinstance(v, tuple) else v
         for k, v in MODEL_BACKBONE.items()}, init_cfg=None)
    cfg.model.neck.update(in_channels=[8, 16, 32, 64], out_channels=NECK)
    return cfg


def _detector(name: str):
    from mmdet.registry import MODELS

    import mmdet_litv2  # noqa: F401
    init_default_scope('mmdet')
    cfg = _tiny(Config.fromfile(str(CONFIGS / f'{name}.py')))
    if name.startswith('retinanet'):
        cfg.model.bbox_head.update(in_channels=NECK, feat_channels=NECK,
                                   stacked_convs=1, num_classes=2)
        # untrained scores are ~0.01: keep some boxes to check
        cfg.model.test_cfg.update(score_thr=0.0, max_per_img=10)
    else:
        cfg.model.rpn_head.update(in_channels=NECK, feat_channels=NECK)
        roi = cfg.model.roi_head
        roi.bbox_roi_extractor.out_channels = NECK
        roi.bbox_head.update(in_channels=NECK, fc_out_channels=32,
                             num_classes=2)
        roi.mask_roi_extractor.out_channels = NECK
        roi.mask_head.update(in_channels=NECK, conv_out_channels=NECK,
                             num_convs=1, num_classes=2)
        cfg.model.test_cfg.rpn.update(nms_pre=200, max_per_img=20)
        cfg.model.test_cfg.rcnn.update(score_thr=0.0, max_per_img=5)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('name', ['retinanet_litv2_s_w2',
                                  'mask_rcnn_litv2_s_w4'])
def test_detector_outputs_fit_the_image(name):
    from mmdet.structures import DetDataSample
    model = _detector(name)
    for h, w in SIZES:
        sample = DetDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
        data = dict(inputs=[torch.randint(0, 256, (3, h, w),
                                          dtype=torch.uint8)],
                    data_samples=[sample])
        with torch.no_grad():
            pred = model.test_step(data)[0].pred_instances
        assert len(pred) > 0, (name, h, w)
        boxes = pred.bboxes
        assert torch.isfinite(boxes).all()
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
        assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        if 'masks' in pred:
            assert tuple(pred.masks.shape) == (len(pred), h, w)


def test_segmentor_output_is_image_sized():
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    import mmseg_litv2  # noqa: F401
    init_default_scope('mmseg')
    cfg = _tiny(Config.fromfile(
        str(CONFIGS / 'semantic_fpn_litv2_s_ade20k.py')))
    cfg.model.decode_head.update(in_channels=[NECK] * 4, channels=NECK,
                                 num_classes=3,
                                 norm_cfg=dict(type='BN', requires_grad=True))
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    # the paper config pads nothing at test time: the backbone sees the
    # image's own odd/thin size
    for h, w in SIZES:
        sample = SegDataSample(metainfo=dict(img_shape=(h, w),
                                             ori_shape=(h, w),
                                             pad_shape=(h, w)))
        data = dict(inputs=[torch.randint(0, 256, (3, h, w),
                                          dtype=torch.uint8)],
                    data_samples=[sample])
        with torch.no_grad():
            result = model.test_step(data)[0]
        assert tuple(result.pred_sem_seg.data.shape) == (1, h, w)
        assert tuple(result.seg_logits.data.shape) == (3, h, w)
        assert torch.isfinite(result.seg_logits.data).all()
