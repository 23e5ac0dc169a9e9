"""mmseg plugin: ``custom_imports = dict(imports=['mmseg_litv2'])``.

Importing it (:func:`litv2_openmmlab.plugin.install_plugin`):

* registers the ``LITv2`` backbone in ``mmseg.registry.MODELS``;
* registers the hooks ``AtomicCheckpointHook``, ``RandomStateHook`` and
  ``FiniteLossHook`` in mmengine's ``HOOKS``, the file backend
  ``atomic_local``, and ``CPUAutocastOptimWrapper`` in mmengine's
  ``OPTIM_WRAPPERS``;
* makes mmengine's ``CheckpointLoader`` read local files and
  ``http(s)://`` URLs with ``weights_only=True`` and the allow-list
  (process-wide): ``init_cfg`` ``Pretrained``, ``load_from``, ``resume``;
* imports ``litv2``, which registers the ImageNet classifiers
  ``litv2_s/m/b/b_384`` in timm's model registry when timm is installed.
"""
from mmseg.registry import MODELS

import litv2  # noqa: F401  (registers the timm classifiers if timm is there)
from litv2_openmmlab import LITv2
from litv2_openmmlab.plugin import install_plugin

install_plugin(MODELS)

__all__ = ['LITv2']
