"""mmseg plugin: ``custom_imports = dict(imports=['mmseg_litv2'])`` registers
the ``LITv2`` backbone in ``mmseg.registry.MODELS``."""
from mmseg.registry import MODELS

from litv2 import LITv2

MODELS.register_module(name='LITv2', module=LITv2)

__all__ = ['LITv2']
