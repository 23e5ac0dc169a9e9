"""mmseg plugin, for ``custom_imports = dict(imports=['mmseg_litv2'])``:
registers ``LITv2`` in ``mmseg.registry.MODELS``; everything else it
does on import is :func:`litv2_openmmlab.plugin.install_plugin`'s."""
from mmseg.registry import MODELS

from litv2_openmmlab import LITv2
from litv2_openmmlab.plugin import install_plugin

install_plugin(MODELS)

__all__ = ['LITv2']
