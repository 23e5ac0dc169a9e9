"""The baseline backbone as an mmdet / mmseg backbone, for whole-model speed
comparisons with ``tools/fps.py``: ``benchmarks/bench_detector.py`` imports
this module, then runs ``tools/fps.py CONFIG --cfg-options
model.backbone.type=ReferenceLITv2Backbone``.

It takes the config's ``LITv2`` arguments, builds the project's ``LITv2`` from
them (same argument checking, same initial weights) and copies its weights
into the straightforward reference algorithm of
``litv2/testing/reference.py``. The state-dict keys are the reference's, so a
checkpoint loads into either backbone. Importing this module registers
``ReferenceLITv2Backbone`` in mmdet's and mmseg's ``MODELS`` (those
installed). Inference only: the reference algorithm has no drop-path, dropout
or gradient checkpointing.
"""
from litv2.testing.reference import ReferenceLITv2

from ..backbone import LITv2

# The arguments the reference algorithm itself takes.
_ARCH_ARGS = ('embed_dim', 'depths', 'num_heads', 'alpha', 'local_ws',
              'mlp_ratio', 'qkv_bias', 'qk_scale', 'out_indices',
              'patch_norm')


class ReferenceLITv2Backbone(ReferenceLITv2):

    def __init__(self, **litv2_kwargs):
        project = LITv2(**litv2_kwargs)
        super().__init__(
            **{k: litv2_kwargs[k] for k in _ARCH_ARGS if k in litv2_kwargs})
        self.load_state_dict(project.state_dict(), strict=True)

    def init_weights(self):
        """Weights come from the project's LITv2 (or a loaded checkpoint)."""

    def train(self, mode: bool = True):
        if mode:
            raise RuntimeError('ReferenceLITv2Backbone is a baseline for '
                               'inference benchmarks; it cannot be trained')
        return super().train(mode)


def _register():
    for registry_module in ('mmdet.registry', 'mmseg.registry'):
        try:
            registry = __import__(registry_module, fromlist=['MODELS']).MODELS
        except ImportError:
            continue
        registry.register_module(module=ReferenceLITv2Backbone, force=True)


_register()
