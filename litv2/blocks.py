"""The two kinds of LITv2 blocks: ConvFFN only (early stages) and HiLo +
ConvFFN."""
from typing import Callable, Optional

import torch
from torch import nn

from . import fast_paths
from .fast_paths import GELU, Linear
from .hilo import HiLo
from .layers import DropPath


class TokenDepthwiseConv(nn.Module):
    """3x3 depthwise convolution applied to a ``(B, H, W, C)`` token map.

    Wrapped in its own module only so that the parameter names
    (``mlp.dwconv.dwconv.*``) match the reference checkpoints.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 3, padding=1,
                                groups=channels, bias=True)
        # The input is a channels-last view, so the conv's backward returns
        # the (C, 1, 3, 3) weight gradient with channels-last strides
        # (9, 1, 3, 1). Give the weight the same strides (same memory: dim 1
        # has size 1) so that DDP's bucket view of it matches the gradient
        # (otherwise "Grad strides do not match bucket view strides" and a
        # strided copy every step).
        self.dwconv.weight.data = self.dwconv.weight.data.to(
            memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, H, W, C) -> channels-last NCHW view and back: no copies.
        return self.dwconv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class ConvFFN(nn.Module):
    """fc1 -> depthwise 3x3 conv -> GELU -> fc2 (no activation after fc1).

    ``Linear`` and ``GELU`` are ``nn.Linear`` and ``nn.GELU`` with the
    inference fast paths of :mod:`litv2.fast_paths`.
    """

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = Linear(dim, hidden_dim)
        self.dwconv = TokenDepthwiseConv(hidden_dim)
        self.act = GELU()
        self.fc2 = Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.dwconv(self.fc1(x)))
        return self.drop(self.fc2(self.drop(x)))


class LITv2Block(nn.Module):
    """One LITv2 block on ``(B, H, W, C)`` tokens.

    ``window_size == 0`` builds the attention-free block of the early stages
    (``x + FFN(LN(x))``, no ``norm1``/``attn``); otherwise
    ``x + HiLo(LN(x))`` comes first. ``norm_layer(dim)`` builds the norms
    (LayerNorm by default).
    """

    def __init__(self, dim: int, num_heads: int, window_size: int,
                 alpha: float, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm):
        super().__init__()
        self.has_attention = window_size > 0
        if self.has_attention:
            self.norm1 = norm_layer(dim)
            self.attn = HiLo(dim, num_heads, window_size=window_size,
                             alpha=alpha, qkv_bias=qkv_bias, qk_scale=qk_scale,
                             attn_drop=attn_drop, proj_drop=drop)
        self.norm2 = norm_layer(dim)
        self.mlp = ConvFFN(dim, int(dim * mlp_ratio), drop=drop)
        self.drop_path = (DropPath(drop_path) if drop_path > 0
                          else nn.Identity())

    def ffn_residual(self, x: torch.Tensor) -> torch.Tensor:
        """The FFN half of the block: ``x + FFN(LN(x))``."""
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # hasattr (not has_attention): TorchScript decides it at compile
        # time, so it does not compile the attention of blocks without one.
        if hasattr(self, 'attn'):
            x = x + self.drop_path(self.attn(self.norm1(x)))
        # CPU inference on a large map: the FFN half piece by piece, same
        # values (litv2.fast_paths). (Nested: TorchScript skips a branch only
        # under is_scripting alone.)
        if not torch.jit.is_scripting():
            if fast_paths.pieces_apply(x, self.training):
                return fast_paths.in_pieces(self.ffn_residual, x,
                                            self.mlp.fc1.out_features,
                                            fast_paths.PIECE_BYTES)
        return self.ffn_residual(x)
