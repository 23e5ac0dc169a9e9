"""LITv2 with HiLo attention in plain PyTorch: the one implementation of the
model shared by the timm classifiers (``litv2.timm_models``) and the
OpenMMLab backbone (``litv2_openmmlab``, used by ``mmdet_litv2`` and
``mmseg_litv2``).

``import litv2`` needs only torch. When timm is installed it also registers
the ImageNet classifiers ``litv2_s/m/b/b_384`` in timm's model registry, and
does nothing else (no mmengine hooks, no checkpoint loaders: those belong to
the plugins and tools).

The inference fast paths (oneDNN linear, the FFN half in pieces, in-place
GELU, channels-last stem) are in ``litv2.fast_paths``, on by default;
``litv2.set_fast_paths(False)`` (or ``with litv2.using_fast_paths(False):``,
or ``LITV2_FAST_PATHS=0`` in the environment) leaves the plain ops.

The mmdet/mmseg backbone (an mmengine ``BaseModule``, built on
``LITv2Backbone``) is ``litv2_openmmlab.LITv2``: ``litv2`` imports nothing of
OpenMMLab.
"""
import importlib
import importlib.util

from .archs import LITV2_ARCHS, local_windows
from .backbone import LITv2Backbone
from .blocks import ConvFFN, LITv2Block
from .classifier import LITv2Classifier
from .dtm import DeformableTokenMerging, DeformConv2dWithBias
from .fast_paths import set_fast_paths, use_fast_paths, using_fast_paths
from .hilo import HiLo, hilo_flops, hilo_head_split
from .trunk import LITv2Trunk


def register_timm_models() -> bool:
    """Register ``litv2_s``, ``litv2_m``, ``litv2_b``, ``litv2_b_384`` in
    timm's model registry (by importing ``litv2.timm_models``; ``import
    litv2`` already did when timm is installed). Without timm, nothing is
    registered and False is returned."""
    if importlib.util.find_spec('timm') is None:
        return False
    importlib.import_module('litv2.timm_models')
    return True


def __getattr__(name):
    # litv2 imports nothing of OpenMMLab: say where the mmdet/mmseg
    # backbone is instead of importing it
    if name == 'LITv2':
        raise AttributeError(
            "module 'litv2' has no attribute 'LITv2': the mmdet/mmseg "
            'backbone is litv2_openmmlab.LITv2 (needs mmengine and mmcv); '
            'the plain-PyTorch one is litv2.LITv2Backbone')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


register_timm_models()

__version__ = '0.1.0'
__all__ = [
    'LITv2Backbone', 'LITv2Classifier', 'LITv2Trunk', 'HiLo', 'hilo_flops',
    'hilo_head_split', 'ConvFFN', 'LITv2Block', 'DeformableTokenMerging',
    'DeformConv2dWithBias', 'LITV2_ARCHS', 'local_windows',
    'register_timm_models', 'set_fast_paths', 'use_fast_paths',
    'using_fast_paths'
]
