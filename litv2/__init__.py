"""LITv2 with HiLo attention: the one implementation shared by the mmdet,
mmseg and timm integrations (``mmdet_litv2``, ``mmseg_litv2``,
``litv2.timm_models``)."""
import importlib
import importlib.util

from .archs import LITV2_ARCHS, local_windows
from .backbone import LITv2
from .blocks import ConvFFN, LITv2Block
from .classifier import LITv2Classifier
from .dtm import DeformableTokenMerging, DeformConv2dWithBias
from .hilo import HiLo, hilo_flops, hilo_head_split


def register_timm_models() -> bool:
    """Register ``litv2_s``, ``litv2_m``, ``litv2_b``, ``litv2_b_384`` in
    timm's model registry (by importing ``litv2.timm_models``). timm is an
    optional dependency of the backbone: without it, nothing is registered
    and False is returned."""
    if importlib.util.find_spec('timm') is None:
        return False
    importlib.import_module('litv2.timm_models')
    return True


__version__ = '0.1.0'
__all__ = [
    'LITv2', 'LITv2Classifier', 'HiLo', 'hilo_flops', 'hilo_head_split',
    'ConvFFN', 'LITv2Block', 'DeformableTokenMerging', 'DeformConv2dWithBias',
    'LITV2_ARCHS', 'local_windows', 'register_timm_models'
]
