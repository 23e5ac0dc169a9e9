"""LITv2 as a multi-scale backbone in plain PyTorch (the model of the
detection / segmentation backbone; ``litv2_openmmlab.LITv2`` adds mmengine's
``init_cfg`` and config arguments on top)."""
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import nn

from .checkpoint import check_state_dict_fits
from .trunk import LITv2Trunk, init_litv2_weights


class LITv2Backbone(LITv2Trunk):
    """LITv2 backbone (Pan et al., "Fast Vision Transformers with HiLo
    Attention", NeurIPS 2022).

    Four stages: a 4x4 patch embedding, then per stage a stack of blocks
    (ConvFFN only where ``local_ws`` is 0, HiLo + ConvFFN otherwise), followed
    by deformable token merging (DTM) into the next stage. Returns the selected
    stages' features as NCHW maps with strides 4, 8, 16, 32; stages other than
    the first pass through a LayerNorm (``norm{i}``) first.

    Parameter names follow the reference implementation, so its released
    ImageNet, detection and segmentation checkpoints load unchanged
    (:meth:`load_backbone_state_dict`).

    Args:
        out_indices: stages whose features are returned.
        frozen_stages: freeze the patch embedding (0) and stages
            ``0 .. frozen_stages - 1`` with their DTM and output norm; -1
            freezes nothing.
        **trunk_kwargs: the architecture, see :class:`litv2.trunk.LITv2Trunk`
            (``embed_dim``, ``depths``, ``num_heads``, ``alpha``,
            ``local_ws``, ``norm_layer``, ...).
    """

    def __init__(self,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
                 **trunk_kwargs):
        super().__init__(norm_layer=norm_layer, **trunk_kwargs)
        num_stages = self.num_layers
        out_indices = check_out_indices(out_indices, num_stages)
        if not isinstance(frozen_stages, int) or not (
                -1 <= frozen_stages <= num_stages):
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], '
                             f'got {frozen_stages!r}')
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        # Per-stage widths (the mmdet/mmseg meaning of num_features).
        self.num_features = list(self.stage_channels)
        # Output norms of every returned stage but the first, as in the
        # reference (and with its names: norm1, norm2, norm3).
        for i in out_indices:
            if i > 0:
                self.add_module(f'norm{i}',
                                norm_layer(self.stage_channels[i]))
        self.apply(init_litv2_weights)
        self._freeze_stages()

    def _frozen_modules(self):
        if self.frozen_stages >= 0:
            yield self.patch_embed
        for i in range(self.frozen_stages):
            yield self.layers[i]
            if i in self.out_indices and i > 0:
                yield getattr(self, f'norm{i}')
        # What forward never runs (the stages after the last one asked for,
        # and that stage's DTM) keeps its weights, so that checkpoints load
        # unchanged, but asks for no gradient: DDP and the optimiser would
        # otherwise wait for gradients that never come.
        last = max(self.out_indices)
        if self.layers[last].downsample is not None:
            yield self.layers[last].downsample
        yield from self.layers[last + 1:]

    def _freeze_stages(self):
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        """Set the mode; frozen stages stay in eval mode (their BN too)."""
        super().train(mode)
        self._freeze_stages()
        return self

    def load_backbone_state_dict(self, state: Dict[str, torch.Tensor],
                                 source: str = 'state dict') -> List[str]:
        """Load a backbone state dict (see
        :func:`litv2.checkpoint.extract_backbone_state_dict`).

        Raises :class:`~litv2.checkpoint.CheckpointMismatchError` (one line,
        the check of :func:`litv2.checkpoint.check_state_dict_fits`) naming
        ``source`` if a backbone key is missing from ``state``, a key of
        ``state`` has no place in the backbone, or a shape differs. The only
        exceptions are the output norms ``norm{i}``: ImageNet checkpoints
        have none (they start fresh) and they exist only for the stages in
        ``out_indices`` (others in ``state`` are unused). Returns notes on
        both, for the caller to log.
        """
        own = self.state_dict()
        output_norm = tuple(f'norm{i}.' for i in range(1, self.num_layers))
        file_has_norms = any(k.startswith(output_norm) for k in state)

        def exempt(key):
            # the file's norms of stages not returned; our norms when the
            # file has none (ImageNet)
            return key.startswith(output_norm) and (
                key not in own or not file_has_norms)

        missing, unused, _ = check_state_dict_fits(
            state, own, f'checkpoint {source!r}',
            f'LITv2 backbone weights (embed_dim={self.embed_dim}, depths='
            f'{self.depths}, local_ws={self.local_ws}, alpha={self.alpha})',
            'Give the ImageNet, detection or segmentation checkpoint of this '
            'LITv2 variant (its embed_dim, depths and local_ws), or set '
            "init_cfg's prefix to where its backbone keys are",
            exempt=exempt)
        self.load_state_dict({k: v for k, v in state.items() if k in own},
                             strict=False)
        notes = []
        if unused:
            notes.append('output norms of stages not in out_indices: '
                         f'{key_summary(sorted(unused))}')
        if missing:
            notes.append('output norms not in the file, initialised fresh: '
                         f'{key_summary(sorted(missing))}')
        return notes

    def stage_output(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Stage ``i``'s output as the backbone returns it: through its
        output norm (stages after the first), as an NCHW map."""
        if i > 0:
            x = getattr(self, f'norm{i}')(x)
        return x.permute(0, 3, 1, 2).contiguous()

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """``x``: ``(B, C, H, W)`` images; returns a tuple of NCHW maps."""
        # Up to the last stage asked for: the stages after it would only
        # cost time (and without the DTM between them they would get the
        # previous stage's width).
        _, outs = self.forward_stages(x, list(self.out_indices),
                                      max(self.out_indices))
        return tuple(outs)


def check_out_indices(out_indices, num_stages: int) -> Tuple[int, ...]:
    """``out_indices`` as a tuple of distinct stage indices in
    ``[0, num_stages)``, or ``ValueError`` naming it (also used by the
    config check of ``litv2_openmmlab``, before anything is built)."""
    if isinstance(out_indices, int) and not isinstance(out_indices, bool):
        out_indices = (out_indices, )
    try:
        out_indices = tuple(out_indices)
    except TypeError:
        raise ValueError(f'out_indices must be a sequence of stage indices, '
                         f'got {out_indices!r}') from None
    for i in out_indices:
        if (not isinstance(i, int) or isinstance(i, bool)
                or not 0 <= i < num_stages):
            raise ValueError(f'out_indices entries must be in [0, '
                             f'{num_stages}) (the stages), got '
                             f'{out_indices}')
    if len(set(out_indices)) != len(out_indices) or not out_indices:
        raise ValueError(f'out_indices must be distinct and non-empty, '
                         f'got {out_indices}')
    return out_indices


def key_summary(keys: list) -> str:
    """``'N keys under [roots]'`` for a log line."""
    roots = sorted({k.split('.')[0] for k in keys})
    return f'{len(keys)} keys under {roots}'
