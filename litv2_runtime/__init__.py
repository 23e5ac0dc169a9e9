"""Run-time support shared by the tools and the two plugins: the allow-list
that lets torch >= 2.6 load mmengine checkpoints with ``weights_only=True``,
and the task detection / device adaptation of ``tools/train.py`` and
``tools/test.py``."""
from .checkpoint_types import (allow_mmengine_checkpoint_types,
                               mmengine_checkpoint_types)

__all__ = ['allow_mmengine_checkpoint_types', 'mmengine_checkpoint_types']
