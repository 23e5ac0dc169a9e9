"""mmseg plugin: ``custom_imports = dict(imports=['mmseg_litv2'])`` registers
the ``LITv2`` backbone in ``mmseg.registry.MODELS`` (and the ImageNet
classifiers ``litv2_s/m/b/b_384`` in timm's model registry)."""
from mmseg.registry import MODELS

from litv2 import LITv2, register_timm_models
from litv2_runtime import use_safe_checkpoint_loader

MODELS.register_module(name='LITv2', module=LITv2)
# Every checkpoint (init_cfg Pretrained, load_from, resume) is read with
# weights_only=True and the allow-list; the hooks of litv2_runtime are
# registered in mmengine's HOOKS.
use_safe_checkpoint_loader()
# The ImageNet classifiers litv2_s/m/b/b_384 in timm's model registry.
register_timm_models()

__all__ = ['LITv2']
