"""HiLo attention (Pan et al., "Fast Vision Transformers with HiLo Attention").

The heads of one attention layer are split in two groups:

* Hi-Fi (``num_heads - int(num_heads * alpha)`` heads) attends inside each
  non-overlapping ``s x s`` window, which captures high-frequency detail;
* Lo-Fi (``int(num_heads * alpha)`` heads) lets every query attend to keys and
  values average-pooled over each ``s x s`` window, which captures global,
  low-frequency structure.

Both branches run on the same input; their outputs are concatenated on the
channel axis (Hi-Fi first). ``window_size == 1`` turns every head into a Lo-Fi
head over the unpooled map: plain global multi-head self-attention.

Tokens are kept as ``(B, H, W, C)`` maps: linear layers act on the last axis
and the window / pooling reshapes need the 2-D layout anyway.
"""
import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from .fast_paths import Linear
from .layers import crop_tokens, pad_to_multiple


def check_alpha(alpha) -> None:
    """Raise ``ValueError`` unless ``alpha`` (the share of HiLo's heads
    given to Lo-Fi) is a number in [0, 1]."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise ValueError(f'alpha must be a number, got {alpha!r} '
                         f'({type(alpha).__name__})')
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')


def check_num_heads(num_heads, dim: int, name: str = 'num_heads',
                    width: str = '') -> None:
    """Raise ``ValueError`` naming ``name`` unless ``num_heads`` is a
    positive int dividing ``dim`` (described as ``width``, by default
    ``dim=<dim>``)."""
    if (isinstance(num_heads, bool) or not isinstance(num_heads, int)
            or num_heads < 1 or dim % num_heads):
        raise ValueError(f'{name}={num_heads!r} must be a positive divisor '
                         f'of {width or f"dim={dim}"}')


def hilo_head_split(num_heads: int, window_size: int, alpha: float):
    """Return ``(lofi_heads, hifi_heads)`` as the reference splits them."""
    if window_size == 1:
        return num_heads, 0
    lofi_heads = int(num_heads * alpha)
    return lofi_heads, num_heads - lofi_heads


def hilo_flops(dim: int, num_heads: int, window_size: int, alpha: float,
               height: int, width: int) -> int:
    """Multiply-accumulates of one HiLo layer on a ``height x width`` map.

    Same convention as the paper's counter: projections and the two attention
    products (q @ k^T, attn @ v) of both branches, on the map padded to a
    multiple of the window; softmax, pooling and scaling are not counted.
    ``hilo_flops(384, 12, 2, 0.5, 14, 14) == 83_467_776``.
    """
    head_dim = dim // num_heads
    lofi_heads, hifi_heads = hilo_head_split(num_heads, window_size, alpha)
    l_dim, h_dim = lofi_heads * head_dim, hifi_heads * head_dim
    s = window_size
    hp, wp = s * math.ceil(height / s), s * math.ceil(width / s)
    n = hp * wp

    num_windows = n // (s * s)
    hifi = (n * dim * h_dim * 3  # qkv projection
            + num_windows * (s * s) ** 2 * h_dim * 2  # q @ k^T and attn @ v
            + n * h_dim * h_dim)  # output projection

    kv_len = (hp // s) * (wp // s)
    lofi = (n * dim * l_dim  # q projection
            + kv_len * dim * l_dim * 2  # k and v projections of pooled tokens
            + n * l_dim * kv_len * 2  # q @ k^T and attn @ v
            + n * l_dim * l_dim)  # output projection
    return int(hifi + lofi)


# The largest batch that F.scaled_dot_product_attention's fused CUDA kernels
# (flash, memory-efficient) accept: the batch is a grid axis of theirs.
SDPA_MAX_CUDA_BATCH = 65535


def window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     scale: float, dropout_p: float = 0.0) -> torch.Tensor:
    """``softmax(q k^T * scale) v`` over short sequences: Hi-Fi's windows of
    ``s * s`` tokens.

    Two batched matmuls: for sequences this short they beat the fused
    ``F.scaled_dot_product_attention`` on CPU (``docs/measuring.md``), and
    the attention matrix is no larger than ``q``. The softmax runs in at
    least fp32 (bf16 scores are rounded to 8 bits); fp16 keeps the fused
    kernel, which accumulates in fp32, because fp16 scores overflow at
    65504. The dtype test makes this a leaf for ``torch.fx``
    (``litv2.timm_models``).
    """
    if q.dtype == torch.float16:
        # SDPA_MAX_CUDA_BATCH, written out: TorchScript reads no global
        # ints (tests/model/test_hilo.py checks the two agree)
        max_cuda_batch = 65535
        if q.is_cuda and q.shape[0] > max_cuda_batch:
            # CUDA's fused kernels put the batch on a grid axis of at most
            # 65535 blocks and fail beyond ("invalid configuration
            # argument"): about 1,300 images at 224x224 in Hi-Fi's windows.
            outs = []
            for first in range(0, q.shape[0], max_cuda_batch):
                last = first + max_cuda_batch
                outs.append(F.scaled_dot_product_attention(
                    q[first:last], k[first:last], v[first:last],
                    dropout_p=dropout_p, scale=scale))
            return torch.cat(outs)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p,
                                              scale=scale)
    attn = torch.matmul(q, k.transpose(-2, -1)) * scale
    if attn.dtype == torch.bfloat16:
        attn = attn.softmax(dim=-1, dtype=torch.float32).to(v.dtype)
    else:
        attn = attn.softmax(dim=-1)
    if dropout_p > 0.0:
        attn = F.dropout(attn, dropout_p, True)
    return torch.matmul(attn, v)


class HiLo(nn.Module):
    """HiLo attention on a ``(B, H, W, C)`` token map.

    Parameter names (``h_qkv``, ``h_proj``, ``l_q``, ``l_kv``, ``l_proj``) and
    their feature orderings follow the reference implementation so that its
    released checkpoints load unchanged.

    Args:
        dim: channels of the tokens.
        num_heads: attention heads, split between Lo-Fi and Hi-Fi by ``alpha``.
        window_size: ``s``, the Hi-Fi window and the Lo-Fi pooling size
            (1 = plain global attention).
        alpha: share of the heads given to Lo-Fi, in [0, 1].
        qkv_bias: bias in the q/k/v projections.
        qk_scale: override of the attention scale ``head_dim ** -0.5``.
        attn_drop: dropout on the attention probabilities (training only).
        proj_drop: dropout after the output projections.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int = 2,
                 alpha: float = 0.9, qkv_bias: bool = True, qk_scale=None,
                 attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        check_num_heads(num_heads, dim)
        if not isinstance(window_size, int) or window_size < 1:
            raise ValueError(f'window_size must be an int >= 1, got '
                             f'{window_size!r}')
        check_alpha(alpha)
        head_dim = dim // num_heads
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.window_size = window_size
        self.alpha = alpha
        self.scale = qk_scale or head_dim ** -0.5
        self.attn_drop = attn_drop
        self.lofi_heads, self.hifi_heads = hilo_head_split(
            num_heads, window_size, alpha)
        l_dim = self.lofi_heads * head_dim
        h_dim = self.hifi_heads * head_dim

        if self.lofi_heads:
            self.l_q = Linear(dim, l_dim, bias=qkv_bias)
            self.l_kv = Linear(dim, 2 * l_dim, bias=qkv_bias)
            self.l_proj = Linear(l_dim, l_dim)
        if self.hifi_heads:
            self.h_qkv = Linear(dim, 3 * h_dim, bias=qkv_bias)
            self.h_proj = Linear(h_dim, h_dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, window_size={self.window_size}, '
                f'lofi_heads={self.lofi_heads}, hifi_heads={self.hifi_heads}')

    def flops(self, height: int, width: int) -> int:
        return hilo_flops(self.dim, self.num_heads, self.window_size,
                          self.alpha, height, width)

    def _attend(self, q, k, v):
        return F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0,
            scale=self.scale)

    def _hifi(self, x):
        """Self-attention inside each s x s window of a padded map."""
        b, h, w, _ = x.shape
        s, heads, hd = self.window_size, self.hifi_heads, self.head_dim
        gh, gw = h // s, w // s
        qkv = self.h_qkv(x).view(b, gh, s, gw, s, 3, heads, hd)
        # -> (3, B*windows, heads, s*s, head_dim)
        qkv = qkv.permute(5, 0, 1, 3, 6, 2, 4, 7).reshape(
            3, b * gh * gw, heads, s * s, hd)
        # unbind: one stacked gradient in backward, not three zero-filled
        # tensors of the full size summed together.
        q, k, v = qkv.unbind(0)
        out = window_attention(
            q, k, v, self.scale,
            self.attn_drop if self.training else 0.0)
        out = out.view(b, gh, gw, heads, s, s, hd).permute(0, 1, 4, 2, 5, 3, 6)
        return self.h_proj(out.reshape(b, h, w, heads * hd))

    def _lofi(self, x):
        """Every query attends to the window-averaged keys and values."""
        b, h, w, c = x.shape
        heads, hd = self.lofi_heads, self.head_dim
        q = self.l_q(x).view(b, h * w, heads, hd).transpose(1, 2)
        if self.window_size > 1:
            # permute gives a channels-last NCHW view: pooling needs no copy.
            pooled = F.avg_pool2d(x.permute(0, 3, 1, 2), self.window_size)
            kv_src = pooled.permute(0, 2, 3, 1).reshape(b, -1, c)
        else:
            kv_src = x.reshape(b, h * w, c)
        kv = self.l_kv(kv_src).view(b, -1, 2, heads, hd).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)
        out = self._attend(q, k, v)
        return self.l_proj(out.transpose(1, 2).reshape(b, h, w, heads * hd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, H, W, C)`` tokens; returns the same shape."""
        h, w = x.shape[1], x.shape[2]
        # The reference pads with zeros before both branches, so padded
        # positions take part in Lo-Fi's pooling; keep that exactly.
        x = pad_to_multiple(x, self.window_size, channels_last=True)
        # hasattr: TorchScript decides it at compile time, so it compiles
        # only the branches whose layers exist.
        if not hasattr(self, 'h_qkv'):
            out = self._lofi(x)
        elif not hasattr(self, 'l_q'):
            out = self._hifi(x)
        else:
            out = torch.cat((self._hifi(x), self._lofi(x)), dim=-1)
        return self.proj_drop(crop_tokens(out, h, w))
