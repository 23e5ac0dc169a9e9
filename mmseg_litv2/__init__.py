"""mmseg plugin, for ``custom_imports = dict(imports=['mmseg_litv2'])``.

Importing it registers the ``LITv2`` backbone in ``mmseg.registry.MODELS``
and, through :func:`litv2_openmmlab.plugin.install_plugin`, the hooks
``AtomicCheckpointHook``, ``RandomStateHook``, ``FiniteLossHook``, the
``atomic_local`` file backend and ``CPUAutocastOptimWrapper`` in mmengine;
it makes mmengine's ``CheckpointLoader`` read local files and URLs with
``weights_only=True`` and the allow-list (process-wide). Through ``litv2``
it registers the classifiers ``litv2_s/m/b/b_384`` in timm (if installed).
"""
from mmseg.registry import MODELS

from litv2_openmmlab import LITv2
from litv2_openmmlab.plugin import install_plugin

install_plugin(MODELS)

__all__ = ['LITv2']
