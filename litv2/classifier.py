"""LITv2 as an ImageNet classifier (the reference's classification model).

The classifier is the backbone (patch embedding, four stages with their DTMs)
followed by a final LayerNorm ``norm``, global average pooling and a linear
``head``. Its state dict has exactly the reference's ImageNet keys
(``patch_embed.*``, ``layers.*``, ``norm.*``, ``head.*``), so the released
``litv2_{s,m,b}.pth`` load unchanged, and a checkpoint written by this
classifier initialises the detection/segmentation backbone (``LITv2`` with
``init_cfg=dict(type='Pretrained', ...)``), which drops ``norm``/``head``.

The methods follow timm's model interface (``forward_features``,
``forward_head``, ``get_classifier``, ``reset_classifier``, ...), so timm's
scripts can train and validate it; see ``litv2/timm_models.py`` for the
registered variants.
"""
from typing import Optional, Sequence

import torch
from mmcv.cnn import build_norm_layer
from torch import nn

from .backbone import LITv2, init_litv2_weights

_POOL_TYPES = ('avg', '')


class LITv2Classifier(LITv2):
    """LITv2 backbone + LayerNorm + average pool + linear head.

    The backbone part is the project's ``LITv2`` itself (same modules, same
    names). The detection-only output norms ``norm1..3`` are not built: the
    backbone is constructed with ``out_indices=(0,)``, the one stage without
    an output norm, and the classifier runs all stages in
    ``forward_features``.

    Args:
        num_classes: classes of the linear head; 0 gives no head (``forward``
            returns the pooled features).
        global_pool: ``'avg'`` (the reference) or ``''`` (no pooling; with
            ``num_classes=0`` ``forward`` returns the normalised
            ``(B, H, W, C)`` map).
        in_chans: image channels (timm's name for ``in_channels``).
        drop_rate: dropout inside HiLo and ConvFFN, as in the reference
            classifier (all published models use 0).
        **backbone_kwargs: the remaining ``LITv2`` arguments (``embed_dim``,
            ``depths``, ``num_heads``, ``alpha``, ``local_ws``,
            ``drop_path_rate``, ``use_checkpoint``, ...). ``out_indices`` and
            ``init_cfg`` belong to the detection backbone and are refused.
    """

    def __init__(self,
                 num_classes: int = 1000,
                 global_pool: str = 'avg',
                 in_chans: int = 3,
                 drop_rate: float = 0.0,
                 embed_dim: int = 96,
                 depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24),
                 norm_cfg: dict = dict(type='LN'),
                 **backbone_kwargs):
        for name in ('out_indices', 'init_cfg', 'in_channels'):
            if name in backbone_kwargs:
                raise ValueError(
                    f'LITv2Classifier: {name!r} is not an argument of the '
                    'classifier' + (' (use in_chans)' if name == 'in_channels'
                                    else ''))
        _check_head_args(num_classes, global_pool)
        super().__init__(embed_dim=embed_dim, depths=depths,
                         num_heads=num_heads, in_channels=in_chans,
                         drop_rate=drop_rate, norm_cfg=norm_cfg,
                         out_indices=(0, ), **backbone_kwargs)
        # timm's meaning of num_features: the width that reaches the head
        # (the backbone's per-stage list is kept as stage_channels).
        self.stage_channels = list(self.num_features)
        self.num_features = self.head_hidden_size = self.stage_channels[-1]
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.norm = build_norm_layer(norm_cfg, self.num_features)[1]
        self.head = self._make_head(num_classes)
        self.norm.apply(init_litv2_weights)
        self.head.apply(init_litv2_weights)

    def _make_head(self, num_classes: int) -> nn.Module:
        return (nn.Linear(self.num_features, num_classes)
                if num_classes > 0 else nn.Identity())

    # timm's model interface ------------------------------------------------
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
        device = self.norm.weight.device
        self.head = self._make_head(num_classes).to(device)
        self.head.apply(init_litv2_weights)

    def set_grad_checkpointing(self, enable: bool = True):
        for stage in self.layers:
            stage.use_checkpoint = enable

    def group_matcher(self, coarse: bool = False) -> dict:
        """Parameter groups for timm's layer-wise lr decay."""
        return dict(stem=r'^patch_embed',
                    blocks=(r'^layers\.(\d+)' if coarse else
                            [(r'^layers\.(\d+)\.downsample', (0, )),
                             (r'^layers\.(\d+)\.blocks\.(\d+)', None),
                             (r'^norm', (99999, ))]))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> normalised last-stage map
        ``(B, H/32, W/32, C_last)``."""
        x = self.patch_embed(x)
        for stage in self.layers:
            x = stage(x)
            if stage.downsample is not None:
                x = stage.downsample(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor,
                     pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == 'avg':
            x = x.mean(dim=(1, 2))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _check_head_args(num_classes, global_pool):
    if not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f'num_classes must be an int >= 0, got '
                         f'{num_classes!r}')
    if global_pool not in _POOL_TYPES:
        raise ValueError(f'global_pool must be one of {_POOL_TYPES}, got '
                         f'{global_pool!r}')
