"""OpenMMLab adapter of the plain-PyTorch LITv2 model (``litv2``).

* ``backbone.py`` - ``LITv2``, the backbone as an mmengine ``BaseModule``
  with mmdet/mmseg config arguments (``norm_cfg``, ``dtm_norm_cfg``,
  ``init_cfg`` with ``Pretrained`` loading);
* ``checkpoint/`` - checkpoints read as data only, loaded strictly, written
  atomically;
* ``engine/`` - mmengine hooks, the CPU autocast optim wrapper, and what the
  tools need around mmengine's ``Runner``;
* ``apis/`` - a config's model built for inference;
* ``model_config_check.py`` - the neck's ``in_channels`` against the
  backbone's output widths;
* ``datasets/`` - the quickstart's toy data set;
* ``testing/`` - the reference algorithm as an mmdet / mmseg backbone, for
  comparisons;
* ``plugin.py`` - what ``mmdet_litv2`` / ``mmseg_litv2`` do on import.

Importing this package imports mmengine and mmcv (and ``litv2``, hence
timm's registration of the classifiers when timm is installed); it
registers nothing in any OpenMMLab registry and leaves mmengine's checkpoint
loader as it is. ``mmdet_litv2`` and ``mmseg_litv2`` register ``LITv2`` and
the rest (:func:`litv2_openmmlab.plugin.install_plugin`).
"""
from .backbone import LITv2, norm_layer_from_cfg
from .checkpoint import read_checkpoint

__all__ = ['LITv2', 'norm_layer_from_cfg', 'read_checkpoint']
