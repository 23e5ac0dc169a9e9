"""mmdet plugin, for ``custom_imports = dict(imports=['mmdet_litv2'])``:
registers ``LITv2`` in ``mmdet.registry.MODELS`` and ``CheckedCocoDataset``
(:mod:`litv2_openmmlab.datasets.checked_coco`) in
``mmdet.registry.DATASETS``; everything else it does on import is
:func:`litv2_openmmlab.plugin.install_plugin`'s."""
from mmdet.registry import DATASETS, MODELS

from litv2_openmmlab import LITv2
from litv2_openmmlab.datasets.checked_coco import (
    AnnotationError,
    CheckedCocoDataset,
)
from litv2_openmmlab.plugin import install_plugin

install_plugin(MODELS)
DATASETS.register_module(name='CheckedCocoDataset', module=CheckedCocoDataset)

__all__ = ['LITv2', 'CheckedCocoDataset', 'AnnotationError']
