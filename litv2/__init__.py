"""LITv2 with HiLo attention: the one implementation shared by the mmdet,
mmseg and timm integrations (``mmdet_litv2``, ``mmseg_litv2``)."""
from .archs import LITV2_ARCHS, local_windows
from .backbone import LITv2
from .blocks import ConvFFN, LITv2Block
from .dtm import DeformableTokenMerging, DeformConv2dWithBias
from .hilo import HiLo, hilo_flops, hilo_head_split

__version__ = '0.1.0'
__all__ = [
    'LITv2', 'HiLo', 'hilo_flops', 'hilo_head_split', 'ConvFFN',
    'LITv2Block', 'DeformableTokenMerging', 'DeformConv2dWithBias',
    'LITV2_ARCHS', 'local_windows'
]
