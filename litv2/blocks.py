"""The two kinds of LITv2 blocks: ConvFFN only (early stages) and HiLo +
ConvFFN."""
from typing import Callable, Optional

import torch
from torch import nn

from .hilo import HiLo
from .layers import DropPath, gelu_unless_recorded, graph_being_recorded
from .onednn import Linear


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


# The FFN half of a block, whose widest tensor is ConvFFN's hidden activation
# (4x the channels), is computed in pieces of about this many bytes of it
# when it is evaluated piecewise (see ``in_pieces``).
PIECE_BYTES = 8 * 2**20


class ConvFFN(nn.Module):
    """fc1 -> depthwise 3x3 conv -> GELU -> fc2 (no activation after fc1)."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = Linear(dim, hidden_dim)
        self.dwconv = TokenDepthwiseConv(hidden_dim)
        self.act = nn.GELU()
        self.fc2 = Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = gelu_unless_recorded(self.dwconv(self.fc1(x)),
                                 self.act.approximate)
        return self.drop(self.fc2(self.drop(x)))


def pieces_apply(x: torch.Tensor, training: bool) -> bool:
    """Whether a block's FFN half runs piecewise: CPU inference (no grad,
    eval mode: stochastic depth draws per image), and no tracer, compiler
    or TorchScript that records the whole-map graph. (The tracer test comes
    first: under torch.fx ``x`` is a Proxy.)"""
    return (not training and not torch.is_grad_enabled()
            and not graph_being_recorded() and x.device.type == 'cpu')


def in_pieces(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
              hidden: int, piece_bytes: int) -> torch.Tensor:
    """``fn(x)`` for a ``fn`` that acts on each token of a ``(B, H, W, C)``
    map and its 3x3 neighbourhood (a block's FFN half: norm, ConvFFN with
    ``hidden`` channels, residual add), computed on pieces of ``x`` whose
    hidden activation takes about ``piece_bytes``: whole images when one
    fits, otherwise strips of rows of one image, each with the row above
    and below (the depthwise conv's reach), cropped off again. Every token
    is computed as in the whole map: the conv sees the same neighbours
    (zeros only at the map's own border). The pieces write into one output,
    so the widest tensors stay in the CPU's caches instead of going to
    memory (fc1, conv, GELU, fc2, and the norm and add around them).

    Maps whose hidden activation is under two and a half pieces are done
    whole (the strips' extra rows and the smaller matmuls would cost more
    than they save). On a 2-core AMD EPYC, 8 MB pieces of ConvFFN alone
    took LITv2-S's stage-1 FFN from 112 to 63 ms (16x56x56) and from 158
    to 98 ms (1x200x320), stage 2 from 71 to 58 / 88 to 75 ms; taking the
    norm and the residual add into the pieces, a stage-1 block at 1x200x320
    went from 139 to 109 ms. The break-even lies near the threshold: a
    stage-3 block at 1x50x80 (2.9 pieces) went from 133 to 125 ms, one at
    16x14x14 (2.3 pieces) from 62 to 66 ms (medians of interleaved runs).
    """
    b, h, w, _ = x.shape
    row_bytes = w * hidden * x.element_size()
    if 2 * b * h * row_bytes < 5 * piece_bytes:
        return fn(x)
    out = torch.empty_like(x)
    if h * row_bytes <= piece_bytes:
        images = piece_bytes // (h * row_bytes)
        for first in range(0, b, images):
            out[first:first + images] = fn(x[first:first + images])
        return out
    rows = max(1, piece_bytes // row_bytes)
    for i in range(b):
        for top in range(0, h, rows):
            bottom = min(top + rows, h)
            lo, hi = max(top - 1, 0), min(bottom + 1, h)
            piece = fn(x[i:i + 1, lo:hi])
            out[i:i + 1, top:bottom] = piece[:, top - lo:bottom - lo]
    return out


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
        # CPU inference on large maps: the FFN half piece by piece (cache
        # blocking, same values); elsewhere the whole map at once. (A nested
        # test: TorchScript skips only a branch under is_scripting alone.)
        if not torch.jit.is_scripting():
            if pieces_apply(x, self.training):
                return in_pieces(self.ffn_residual, x,
                                 self.mlp.fc1.out_features, PIECE_BYTES)
        return self.ffn_residual(x)
