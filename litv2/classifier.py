"""LITv2 as an ImageNet classifier (the reference's classification model).

The classifier is the LITv2 trunk (patch embedding, four stages with their
DTMs) followed by a final LayerNorm ``norm``, global average pooling and a
linear ``head``. Its state dict has exactly the reference's ImageNet keys
(``patch_embed.*``, ``layers.*``, ``norm.*``, ``head.*``), so the released
``litv2_{s,m,b}.pth`` load unchanged, and a checkpoint written by this
classifier initialises the detection/segmentation backbone, which drops
``norm``/``head``.

Plain PyTorch with timm's model interface (``forward_features``,
``forward_head``, ``forward_intermediates``, ``feature_info``,
``reset_classifier``, ...); ``litv2/timm_models.py`` registers the paper's
variants in timm.
"""
from typing import Callable, List, Optional, Sequence, Set, Tuple, Union

import torch
from torch import nn

from .trunk import LITv2Trunk, init_litv2_weights

_POOL_TYPES = ('avg', '')
_OUTPUT_FORMATS = ('NCHW', 'NHWC')


class LITv2Classifier(LITv2Trunk):
    """LITv2 trunk + LayerNorm + average pool + linear head.

    ``forward_features`` returns the normalised last-stage map in
    ``(B, H, W, C)`` layout, LITv2's own token layout (declared as
    ``output_fmt = 'NHWC'``, as timm's Swin does); ``forward_intermediates``
    and ``features_only`` give NCHW maps by default.

    Args:
        num_classes: classes of the linear head; 0 gives no head (``forward``
            returns the pooled features).
        global_pool: ``'avg'`` (the reference) or ``''`` (no pooling; with
            ``num_classes=0`` ``forward`` returns the normalised
            ``(B, H, W, C)`` map).
        in_chans: image channels (timm's name for ``in_channels``).
        drop_rate: dropout inside HiLo and ConvFFN, as in the reference
            classifier (all published models use 0).
        norm_layer: ``norm_layer(channels)`` builds the token norms and the
            final norm (LayerNorm).
        **trunk_kwargs: the remaining architecture arguments of
            :class:`litv2.trunk.LITv2Trunk` (``embed_dim``, ``depths``,
            ``num_heads``, ``alpha``, ``local_ws``, ``drop_path_rate``,
            ``use_checkpoint``, ...).
    """

    def __init__(self,
                 num_classes: int = 1000,
                 global_pool: str = 'avg',
                 in_chans: int = 3,
                 drop_rate: float = 0.0,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
                 **trunk_kwargs):
        for name in ('out_indices', 'init_cfg', 'in_channels',
                     'frozen_stages'):
            if name in trunk_kwargs:
                raise ValueError(
                    f'LITv2Classifier: {name!r} is not an argument of the '
                    'classifier' + (' (use in_chans)' if name == 'in_channels'
                                    else ''))
        _check_head_args(num_classes, global_pool)
        super().__init__(in_channels=in_chans, drop_rate=drop_rate,
                         norm_layer=norm_layer, **trunk_kwargs)
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.in_chans = in_chans
        self.output_fmt = 'NHWC'
        # timm's meaning of num_features: the width that reaches the head.
        self.num_features = self.head_hidden_size = self.stage_channels[-1]
        patch_size = self.patch_embed.patch_size
        self.feature_info = [
            dict(num_chs=channels, reduction=patch_size * 2**i,
                 module=f'layers.{i}')
            for i, channels in enumerate(self.stage_channels)
        ]
        self.norm = norm_layer(self.num_features)
        self.head = self._make_head(num_classes)
        self.apply(init_litv2_weights)

    def _make_head(self, num_classes: int) -> nn.Module:
        return (nn.Linear(self.num_features, num_classes)
                if num_classes > 0 else nn.Identity())

    # timm's model interface ------------------------------------------------
    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int,
                         global_pool: Optional[str] = None):
        """A fresh head for ``num_classes`` (0: none); optionally change the
        pooling."""
        global_pool = self.global_pool if global_pool is None else global_pool
        _check_head_args(num_classes, global_pool)
        self.num_classes = num_classes
        self.global_pool = global_pool
        device = self.patch_embed.proj.weight.device
        self.head = self._make_head(num_classes).to(device)
        self.head.apply(init_litv2_weights)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        super().set_grad_checkpointing(enable)

    @torch.jit.ignore
    def no_weight_decay(self) -> Set[str]:
        """No parameter is exempted by name (LITv2 has no position
        embedding or bias table); timm's optimiser factory already leaves
        out norms and biases (1-D parameters)."""
        return set()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """Parameter groups for timm's layer-wise lr decay, in depth order.
        A stage's DTM comes after its blocks (unlike Swin's downsampling,
        which opens a stage), so it joins the group of the stage's last
        block, as the final norm joins the last block's (timm's suffix
        ``(99999,)``: same group as the one before)."""
        return dict(stem=r'^patch_embed',
                    blocks=(r'^layers\.(\d+)' if coarse else
                            [(r'^layers\.(\d+)\.downsample', (99999, )),
                             (r'^layers\.(\d+)\.blocks\.(\d+)', None),
                             (r'^norm', (99999, ))]))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, List[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = 'NCHW',
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The stage outputs (before each DTM), as timm's models give them.

        Args:
            x: images ``(B, C, H, W)``.
            indices: stages to return: the last ``n`` if an int, all if None,
                else the listed ones (negative count from the end).
            norm: apply the final norm to the last stage's output.
            stop_early: stop after the last stage asked for (then the
                returned final features are that stage's, not normalised).
            output_fmt: ``'NCHW'`` or ``'NHWC'`` for the intermediates.
            intermediates_only: return only the intermediates.
        Returns:
            ``intermediates`` or ``(final features, intermediates)``; the
            final features are what ``forward_features`` returns.
        """
        if output_fmt not in _OUTPUT_FORMATS:
            raise ValueError(f'output_fmt must be one of {_OUTPUT_FORMATS}, '
                             f'got {output_fmt!r}')
        take_indices, max_index = stage_indices(len(self.layers), indices)
        last = len(self.layers) - 1
        stop = max_index if stop_early or intermediates_only else last
        x, intermediates = self.forward_stages(x, take_indices, stop)
        # In stage order: the last stage's output, if taken, comes last.
        if norm and last in take_indices:
            intermediates[-1] = self.norm(intermediates[-1])
        if output_fmt == 'NCHW':
            for j, out in enumerate(intermediates):
                intermediates[j] = out.permute(0, 3, 1, 2).contiguous()
        if intermediates_only:
            return intermediates
        if stop == last:
            x = self.norm(x)
        return x, intermediates

    @torch.jit.ignore
    def prune_intermediate_layers(self,
                                  indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Remove what the given intermediates do not need: later stages
        and the DTM after the last stage kept; the final norm
        (``prune_norm``, or when the last stage goes) and the head
        (``prune_head``). Returns the stage indices, made absolute."""
        take_indices, max_index = stage_indices(len(self.layers), indices)
        # The final norm belongs to the last stage: it goes with it.
        if prune_norm or max_index < len(self.layers) - 1:
            self.norm = nn.Identity()
        self.layers = self.layers[:max_index + 1]
        self.layers[-1].downsample = None
        if prune_head:
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> normalised last-stage map
        ``(B, H/32, W/32, C_last)``."""
        no_outputs: List[int] = []
        x, _ = self.forward_stages(x, no_outputs, len(self.layers) - 1)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor,
                     pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == 'avg':
            x = x.mean(dim=(1, 2))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def stage_indices(num_stages: int,
                  indices: Optional[Union[int, Sequence[int]]] = None
                  ) -> Tuple[List[int], int]:
    """``(absolute stage indices, largest of them)`` for timm's ``indices``
    argument: None = all stages, an int ``n`` = the last ``n``, a sequence
    = those stages (negative ones count from the end)."""
    if indices is None:
        indices = num_stages
    if isinstance(indices, int):
        if not 0 < indices <= num_stages:
            raise ValueError(f'indices={indices}: the last n stages, n in '
                             f'[1, {num_stages}]')
        take = list(range(num_stages - indices, num_stages))
    else:
        take = []
        for i in indices:
            index = num_stages + i if i < 0 else i
            if not 0 <= index < num_stages:
                raise ValueError(f'indices: stage {i} is out of range for '
                                 f'{num_stages} stages')
            take.append(index)
    if not take:
        raise ValueError('indices must name at least one stage')
    return take, max(take)


def _check_head_args(num_classes, global_pool):
    if not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f'num_classes must be an int >= 0, got '
                         f'{num_classes!r}')
    if global_pool not in _POOL_TYPES:
        raise ValueError(f'global_pool must be one of {_POOL_TYPES}, got '
                         f'{global_pool!r}')
