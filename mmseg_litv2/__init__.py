"""mmseg plugin: ``custom_imports = dict(imports=['mmseg_litv2'])`` registers
the ``LITv2`` backbone in ``mmseg.registry.MODELS``."""
from mmseg.registry import MODELS

from litv2 import LITv2
from litv2_runtime import use_safe_checkpoint_loader

MODELS.register_module(name='LITv2', module=LITv2)
# Every checkpoint (init_cfg Pretrained, load_from, resume) is read with
# weights_only=True and the allow-list; the hooks of litv2_runtime are
# registered in mmengine's HOOKS.
use_safe_checkpoint_loader()

__all__ = ['LITv2']
