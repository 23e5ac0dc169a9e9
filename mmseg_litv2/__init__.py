"""mmseg plugin: ``custom_imports = dict(imports=['mmseg_litv2'])`` registers
the ``LITv2`` backbone in ``mmseg.registry.MODELS``."""
from mmseg.registry import MODELS

from litv2 import LITv2
from litv2_runtime import allow_mmengine_checkpoint_types

MODELS.register_module(name='LITv2', module=LITv2)
# Runner checkpoints (resume, tools/test.py) load with weights_only=True.
allow_mmengine_checkpoint_types()

__all__ = ['LITv2']
