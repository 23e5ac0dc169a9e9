"""mmseg plugin: ``custom_imports = dict(imports=['mmseg_litv2'])`` registers
the ``LITv2`` backbone in ``mmseg.registry.MODELS`` (and the ImageNet
classifiers ``litv2_s/m/b/b_384`` in timm's model registry)."""
from mmseg.registry import MODELS

import litv2  # noqa: F401  (registers the timm classifiers if timm is there)
from litv2_openmmlab import LITv2
from litv2_runtime import use_safe_checkpoint_loader

MODELS.register_module(name='LITv2', module=LITv2)
# Every checkpoint (init_cfg Pretrained, load_from, resume) is read with
# weights_only=True and the allow-list; the hooks of litv2_runtime are
# registered in mmengine's HOOKS.
use_safe_checkpoint_loader()

__all__ = ['LITv2']
