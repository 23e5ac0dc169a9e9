"""mmdet plugin: ``custom_imports = dict(imports=['mmdet_litv2'])`` registers
the ``LITv2`` backbone in ``mmdet.registry.MODELS`` (and the ImageNet
classifiers ``litv2_s/m/b/b_384`` in timm's model registry)."""
from mmdet.registry import MODELS

from litv2 import LITv2, register_timm_models
from litv2_runtime import allow_mmengine_checkpoint_types

MODELS.register_module(name='LITv2', module=LITv2)
# Runner checkpoints (resume, tools/test.py) load with weights_only=True.
allow_mmengine_checkpoint_types()
# The ImageNet classifiers litv2_s/m/b/b_384 in timm's model registry.
register_timm_models()

__all__ = ['LITv2']
