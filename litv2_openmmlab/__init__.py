"""OpenMMLab adapter of the plain-PyTorch LITv2 model (``litv2``): the
``LITv2`` backbone as an mmengine ``BaseModule`` with mmdet/mmseg config
arguments (``norm_cfg``, ``dtm_norm_cfg``, ``init_cfg`` with ``Pretrained``
loading through mmengine's checkpoint reader). ``mmdet_litv2`` and
``mmseg_litv2`` register it in their registries; importing this package
registers nothing."""
from .backbone import LITv2, norm_layer_from_cfg
from .checkpoint import read_checkpoint

__all__ = ['LITv2', 'norm_layer_from_cfg', 'read_checkpoint']
