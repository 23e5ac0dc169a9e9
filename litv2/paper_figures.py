"""The paper's published figures and the reference's released weights: the one
place of the project that holds them.

Sources: the paper's README and the reference's ``classification/``,
``detection/`` and ``segmentation/`` READMEs (github.com/ziplab/LITv2,
releases v1.0). Figures are as published (rounded as there). Readers:
``configs/metafile.yml`` (checked by ``tests/openmmlab/test_metafile.py``),
``benchmarks/bench_configs.py``, and the tests that compare the project's
models with the paper (parameter counts, FLOPs).

Detection and segmentation models are keyed by the project's config name
(``configs/<name>.py``), classifiers by the timm model name
(``litv2.timm_models``).
"""
from typing import NamedTuple, Optional

PAPER_TITLE = 'Fast Vision Transformers with HiLo Attention'
PAPER_URL = 'https://arxiv.org/abs/2205.13213'
CODE_URL = 'https://github.com/ziplab/LITv2'
RELEASE_URL = 'https://github.com/ziplab/LITv2/releases/download/v1.0/'


class Classifier(NamedTuple):
    """An ImageNet-1k classifier of the paper's table (RTX 3090, batch 64)."""
    variant: str  # 'S', 'M', 'B'
    resolution: int
    params_m: float  # Params (M)
    flops_g: float  # FLOPs (G)
    throughput: int  # images / s
    train_mem_gb: float
    test_mem_gb: float
    top1: float  # Top-1 (%)
    weights: str  # file of the release


class DenseModel(NamedTuple):
    """A COCO detector or an ADE20K segmentor of the paper's tables (FPS on
    an RTX 3090); ``box_ap`` / ``mask_ap`` / ``miou`` where the task has
    them."""
    model: str  # 'RetinaNet', 'Mask R-CNN', 'Semantic FPN'
    variant: str
    window: int  # HiLo window of stage 3
    params_m: float
    flops_g: float
    fps: float
    weights: str  # file of the release
    box_ap: Optional[float] = None
    mask_ap: Optional[float] = None
    miou: Optional[float] = None


CLASSIFIERS = {
    'litv2_s': Classifier('S', 224, 28, 3.7, 1471, 5.1, 1.2, 82.0,
                          'litv2_s.pth'),
    'litv2_m': Classifier('M', 224, 49, 7.5, 812, 8.8, 1.4, 83.3,
                          'litv2_m.pth'),
    'litv2_b': Classifier('B', 224, 87, 13.2, 602, 12.2, 2.1, 83.6,
                          'litv2_b.pth'),
    'litv2_b_384': Classifier('B', 384, 87, 39.7, 198, 35.8, 4.6, 84.7,
                              'litv2_b_384.pth'),
}


def _retinanet(v, w, params, flops, fps, box):
    suffix = '' if w == 2 else '_ws_4'
    return DenseModel('RetinaNet', v, w, params, flops, fps,
                      f'retinanet_litv2_{v.lower()}_fpn_1x_coco{suffix}.pth',
                      box_ap=box)


def _mask_rcnn(v, w, params, flops, fps, box, mask):
    suffix = '' if w == 2 else '_ws_4'
    return DenseModel('Mask R-CNN', v, w, params, flops, fps,
                      f'mask_rcnn_litv2_{v.lower()}_fpn_1x_coco{suffix}.pth',
                      box_ap=box, mask_ap=mask)


def _semantic_fpn(v, params, flops, fps, miou):
    return DenseModel(
        'Semantic FPN', v, 2, params, flops, fps,
        f'litv2_{v.lower()}_fpn_r50_512x512_80k_ade20k.pth', miou=miou)


DENSE_MODELS = {
    'retinanet_litv2_s_w2': _retinanet('S', 2, 38, 242, 18.7, 44.0),
    'retinanet_litv2_s_w4': _retinanet('S', 4, 38, 230, 20.4, 43.7),
    'retinanet_litv2_m_w2': _retinanet('M', 2, 59, 348, 12.2, 46.0),
    'retinanet_litv2_m_w4': _retinanet('M', 4, 59, 312, 14.8, 45.8),
    'retinanet_litv2_b_w2': _retinanet('B', 2, 97, 481, 9.5, 46.7),
    'retinanet_litv2_b_w4': _retinanet('B', 4, 97, 430, 11.8, 46.3),
    'mask_rcnn_litv2_s_w2': _mask_rcnn('S', 2, 47, 261, 18.7, 44.9, 40.8),
    'mask_rcnn_litv2_s_w4': _mask_rcnn('S', 4, 47, 249, 21.9, 44.7, 40.7),
    'mask_rcnn_litv2_m_w2': _mask_rcnn('M', 2, 68, 367, 12.6, 46.8, 42.3),
    'mask_rcnn_litv2_m_w4': _mask_rcnn('M', 4, 68, 315, 16.0, 46.5, 42.0),
    'mask_rcnn_litv2_b_w2': _mask_rcnn('B', 2, 106, 500, 9.3, 47.3, 42.6),
    'mask_rcnn_litv2_b_w4': _mask_rcnn('B', 4, 106, 449, 11.5, 46.8, 42.3),
    'semantic_fpn_litv2_s_ade20k': _semantic_fpn('S', 31, 41, 42.6, 44.3),
    'semantic_fpn_litv2_m_ade20k': _semantic_fpn('M', 52, 63, 28.5, 45.7),
    'semantic_fpn_litv2_b_ade20k': _semantic_fpn('B', 90, 93, 27.5, 47.2),
}

# config name -> (params (M), FLOPs (G), FPS), the columns that
# benchmarks/bench_configs.py compares with.
PAPER_TABLES = {name: (m.params_m, m.flops_g, m.fps)
                for name, m in DENSE_MODELS.items()}


def weights_url(filename: str) -> str:
    """The download address of a file of the reference's release v1.0."""
    return RELEASE_URL + filename
