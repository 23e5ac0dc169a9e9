"""Plain PyTorch re-implementation of the reference LITv2 detection backbone.

Written for this project as an independent, deliberately straightforward
re-implementation of the algorithm of the LITv2 detection backbone
(ziplab/LITv2, ``detection/mmdet/models/backbones/litv2.py``; paper "Fast
Vision Transformers with HiLo Attention", NeurIPS 2022).  It serves two
purposes:

* the test oracle that the project's optimised backbone is compared against
  (same ``state_dict()`` keys and shapes as the reference, so weights can be
  moved between the two with ``load_state_dict``);
* the "baseline" of the speed benchmarks (``benchmarks/``, and as an mmdet /
  mmseg backbone ``litv2_openmmlab.testing.reference_backbone``).

It only depends on ``torch``.  HiLo attention is computed the explicit way
(``softmax(q @ k^T * scale) @ v``) and the deformable convolution of the
deformable token merging (DTM) module is computed directly by bilinear
sampling with gather, following the mmcv / torchvision convention.

This is an eval-only oracle: dropout, attention dropout and stochastic depth
(drop-path) are left out (equivalent to the reference with all rates 0 or in
eval mode), as are gradient checkpointing, frozen stages and weight loading.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    'build_reference_backbone', 'randomize_', 'hilo_flops',
    'deform_conv2d_direct', 'ReferenceLITv2', 'HiLoAttention',
]


# --------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------
class PatchEmbedding(nn.Module):
    """Pad to a multiple of the patch size, 4x4/4 conv, LayerNorm on
    channels."""

    def __init__(self, in_chans=3, embed_dim=96, patch=4, use_norm=True):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(in_chans, embed_dim, patch, stride=patch)
        self.norm = nn.LayerNorm(embed_dim) if use_norm else None

    def forward(self, img):
        h, w = img.shape[-2:]
        extra_h = (self.patch - h % self.patch) % self.patch
        extra_w = (self.patch - w % self.patch) % self.patch
        img = F.pad(img, (0, extra_w, 0, extra_h))  # right / bottom only
        fmap = self.proj(img)
        hh, ww = fmap.shape[-2:]
        tokens = fmap.flatten(2).transpose(1, 2)  # B, N, C
        if self.norm is not None:
            tokens = self.norm(tokens)
        return tokens, hh, ww


class _DepthwiseConv(nn.Module):
    """Holder so that the parameter keys read ``mlp.dwconv.dwconv.*``."""

    def __init__(self, channels):
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 3, padding=1,
                                groups=channels, bias=True)


class ConvFFN(nn.Module):
    """fc1 -> depthwise 3x3 on the token map -> GELU -> fc2 (no activation
    after fc1)."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = _DepthwiseConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, tokens, h, w):
        y = self.fc1(tokens)
        b, n, c = y.shape
        fmap = y.transpose(1, 2).reshape(b, c, h, w)
        fmap = self.dwconv.dwconv(fmap)
        y = self.act(fmap.flatten(2).transpose(1, 2))
        return self.fc2(y)


def _attend(q, k, v, scale):
    """Explicit scaled dot-product attention over the last two dims."""
    weights = (q @ k.transpose(-2, -1)) * scale
    weights = weights.softmax(dim=-1)
    return weights @ v


class HiLoAttention(nn.Module):
    """HiLo attention: Hi-Fi heads attend inside s x s windows, Lo-Fi heads
    attend to an s x s average-pooled copy of the map.  s == 1 means plain
    global multi-head attention (all heads Lo-Fi, no pooling)."""

    def __init__(self, dim, num_heads=8, qkv_bias=False, qk_scale=None,
                 window_size=2, alpha=0.5):
        super().__init__()
        assert dim % num_heads == 0, 'dim must be divisible by num_heads'
        self.dim = dim
        self.head_dim = dim // num_heads
        self.ws = window_size
        if window_size == 1:
            self.lo_heads, self.hi_heads = num_heads, 0
        else:
            # truncation as in the reference
            self.lo_heads = int(num_heads * alpha)
            self.hi_heads = num_heads - self.lo_heads
        self.lo_dim = self.lo_heads * self.head_dim
        self.hi_dim = self.hi_heads * self.head_dim
        # `or`, not `is None`: a zero qk_scale also falls back to the default
        self.scale = qk_scale or self.head_dim ** -0.5

        if self.lo_heads > 0:
            self.l_q = nn.Linear(dim, self.lo_dim, bias=qkv_bias)
            self.l_kv = nn.Linear(dim, 2 * self.lo_dim, bias=qkv_bias)
            self.l_proj = nn.Linear(self.lo_dim, self.lo_dim)
        if self.hi_heads > 0:
            self.h_qkv = nn.Linear(dim, 3 * self.hi_dim, bias=qkv_bias)
            self.h_proj = nn.Linear(self.hi_dim, self.hi_dim)

    def _hi_fi(self, fmap):
        # fmap: B, Hp, Wp, C with Hp, Wp multiples of the window
        b, hp, wp, c = fmap.shape
        s, nh, hd = self.ws, self.hi_heads, self.head_dim
        gh, gw = hp // s, wp // s
        win = fmap.reshape(b, gh, s, gw, s, c).permute(0, 1, 3, 2, 4, 5)
        win = win.reshape(b, gh * gw, s * s, c)
        # feature layout of h_qkv output: [3, heads, head_dim]
        qkv = self.h_qkv(win).reshape(b, gh * gw, s * s, 3, nh, hd)
        qkv = qkv.permute(3, 0, 1, 4, 2, 5)  # 3, B, G, heads, s*s, hd
        out = _attend(qkv[0], qkv[1], qkv[2], self.scale)
        out = out.permute(0, 1, 3, 2, 4).reshape(b, gh, gw, s, s, self.hi_dim)
        out = out.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, self.hi_dim)
        return self.h_proj(out)

    def _lo_fi(self, fmap):
        b, hp, wp, c = fmap.shape
        nh, hd = self.lo_heads, self.head_dim
        q = self.l_q(fmap).reshape(b, hp * wp, nh, hd).transpose(1, 2)
        if self.ws > 1:
            pooled = F.avg_pool2d(fmap.permute(0, 3, 1, 2), self.ws, self.ws)
            src = pooled.flatten(2).transpose(1, 2)  # B, M, C
        else:
            src = fmap.reshape(b, hp * wp, c)
        # feature layout of l_kv output: [2, heads, head_dim]
        kv = self.l_kv(src).reshape(b, src.shape[1], 2, nh, hd)
        kv = kv.permute(2, 0, 3, 1, 4)
        out = _attend(q, kv[0], kv[1], self.scale)  # B, heads, Np, hd
        out = out.transpose(1, 2).reshape(b, hp, wp, self.lo_dim)
        return self.l_proj(out)

    def forward(self, tokens, h, w):
        b, n, c = tokens.shape
        fmap = tokens.reshape(b, h, w, c)
        pad_h = (self.ws - h % self.ws) % self.ws
        pad_w = (self.ws - w % self.ws) % self.ws
        # zero padding at the right / bottom; padded cells are queries too
        fmap = F.pad(fmap, (0, 0, 0, pad_w, 0, pad_h))
        parts = []
        if self.hi_heads > 0:
            parts.append(self._hi_fi(fmap)[:, :h, :w])
        if self.lo_heads > 0:
            parts.append(self._lo_fi(fmap)[:, :h, :w])
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        return out.reshape(b, n, c)


class AttentionBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio, qkv_bias, qk_scale, window,
                 alpha):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = HiLoAttention(dim, num_heads, qkv_bias, qk_scale, window,
                                  alpha)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = ConvFFN(dim, int(dim * mlp_ratio))

    def forward(self, x, h, w):
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.mlp(self.norm2(x), h, w)


class FFNBlock(nn.Module):
    """Block of the stages without attention: only the ConvFFN residual."""

    def __init__(self, dim, mlp_ratio):
        super().__init__()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = ConvFFN(dim, int(dim * mlp_ratio))

    def forward(self, x, h, w):
        return x + self.mlp(self.norm2(x), h, w)


# --------------------------------------------------------------------------
# Deformable token merging
# --------------------------------------------------------------------------
def deform_conv2d_direct(x, offset, weight, bias=None, stride=2):
    """Deformable convolution (padding 0, dilation 1, one offset group),
    computed directly by bilinear sampling.

    x: B x C x H x W; offset: B x 2K x Ho x Wo with channel 2k = dy and
    2k + 1 = dx for kernel position k = ky * kw + kx; weight: O x C x kh x kw.
    Sampling point of (oy, ox, k) is
    (oy*stride + ky + dy, ox*stride + kx + dx).
    A point with y <= -1, y >= H, x <= -1 or x >= W reads 0; otherwise each of
    its four bilinear corners contributes only if it lies inside the map.
    """
    b, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    nk = kh * kw
    ho = (h - kh) // stride + 1
    wo = (w - kw) // stride + 1
    assert offset.shape == (b, 2 * nk, ho, wo), offset.shape

    dev, dt = x.device, offset.dtype
    ky = torch.arange(kh, device=dev, dtype=dt).repeat_interleave(kw)  # K
    kx = torch.arange(kw, device=dev, dtype=dt).repeat(kh)             # K
    grid_y = torch.arange(ho, device=dev, dtype=dt) * stride
    grid_x = torch.arange(wo, device=dev, dtype=dt) * stride
    base_y = grid_y.view(1, 1, ho, 1) + ky.view(1, nk, 1, 1)
    base_x = grid_x.view(1, 1, 1, wo) + kx.view(1, nk, 1, 1)
    off = offset.reshape(b, nk, 2, ho, wo)
    py = base_y + off[:, :, 0]  # B, K, Ho, Wo
    px = base_x + off[:, :, 1]

    in_range = (py > -1) & (py < h) & (px > -1) & (px < w)
    y0 = torch.floor(py)
    x0 = torch.floor(px)
    fy = py - y0
    fx = px - x0
    y0 = y0.long()
    x0 = x0.long()
    flat = x.reshape(b, c, h * w)

    def corner(yi, xi, coef):
        ok = in_range & (yi >= 0) & (yi <= h - 1) & (xi >= 0) & (xi <= w - 1)
        idx = yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)
        idx = idx.reshape(b, 1, -1).expand(b, c, -1)
        vals = flat.gather(2, idx).reshape(b, c, nk, ho, wo)
        return vals * (coef * ok.to(coef.dtype)).unsqueeze(1)

    sampled = (corner(y0, x0, (1 - fy) * (1 - fx))
               + corner(y0, x0 + 1, (1 - fy) * fx)
               + corner(y0 + 1, x0, fy * (1 - fx))
               + corner(y0 + 1, x0 + 1, fy * fx))  # B, C, K, Ho, Wo
    out = torch.einsum('bckyx,ock->boyx', sampled, weight.reshape(o, c, nk))
    if bias is not None:
        out = out + bias.view(1, o, 1, 1)
    return out


class DeformConv2x2(nn.Module):
    """Deformable conv (kernel 2, stride 2, bias) with its offset predictor."""

    def __init__(self, c_in, c_out, kernel=2, stride=2):
        super().__init__()
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.empty(c_out))
        self.conv_offset = nn.Conv2d(c_in, 2 * kernel * kernel, kernel,
                                     stride=stride, bias=True)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1.0 / math.sqrt(c_in * kernel * kernel)
        nn.init.uniform_(self.bias, -bound, bound)
        nn.init.zeros_(self.conv_offset.weight)  # offsets start at zero
        nn.init.zeros_(self.conv_offset.bias)

    # The speed benchmarks set this to False: the reference runs a compiled
    # deformable-conv op, so the baseline uses torchvision's instead of the
    # (slower) direct sampling that the tests rely on.
    direct = True

    def forward(self, x):
        offset = self.conv_offset(x)
        if self.direct:
            return deform_conv2d_direct(x, offset, self.weight, self.bias,
                                        self.stride)
        from torchvision.ops import deform_conv2d
        return deform_conv2d(x, offset, self.weight, self.bias,
                             stride=self.stride)


class TokenMerging(nn.Module):
    """DTM: deformable conv C -> 2C (halves the map), BatchNorm2d, GELU."""

    def __init__(self, dim):
        super().__init__()
        self.dconv = DeformConv2x2(dim, 2 * dim)
        self.norm_layer = nn.BatchNorm2d(2 * dim)
        self.act_layer = nn.GELU()

    def forward(self, tokens, h, w):
        b, n, c = tokens.shape
        fmap = tokens.reshape(b, h, w, c).permute(0, 3, 1, 2)
        fmap = self.act_layer(self.norm_layer(self.dconv(fmap)))
        nh, nw = fmap.shape[-2:]
        return fmap.flatten(2).transpose(1, 2), nh, nw


class Stage(nn.Module):
    def __init__(self, dim, depth, num_heads, mlp_ratio, qkv_bias, qk_scale,
                 window, alpha, with_attention, with_merge):
        super().__init__()
        if with_attention:
            blocks = [AttentionBlock(dim, num_heads, mlp_ratio, qkv_bias,
                                     qk_scale, window, alpha)
                      for _ in range(depth)]
        else:
            blocks = [FFNBlock(dim, mlp_ratio) for _ in range(depth)]
        self.blocks = nn.ModuleList(blocks)
        self.downsample = TokenMerging(dim) if with_merge else None

    def forward(self, x, h, w):
        for blk in self.blocks:
            x = blk(x, h, w)
        return x


# --------------------------------------------------------------------------
# Backbone
# --------------------------------------------------------------------------
class ReferenceLITv2(nn.Module):
    """LITv2 backbone; forward(B x 3 x H x W) -> tuple of NCHW stage
    outputs."""

    def __init__(self, embed_dim=96, depths=(2, 2, 6, 2),
                 num_heads=(3, 6, 12, 24), alpha=0.9, local_ws=(0, 0, 2, 1),
                 mlp_ratio=4.0, qkv_bias=True, qk_scale=None,
                 out_indices=(0, 1, 2, 3), patch_norm=True):
        super().__init__()
        n_stages = len(depths)
        self.out_indices = tuple(out_indices)
        self.num_features = [int(embed_dim * 2 ** i) for i in range(n_stages)]
        self.patch_embed = PatchEmbedding(3, embed_dim, 4, patch_norm)
        self.layers = nn.ModuleList([
            Stage(self.num_features[i], depths[i], num_heads[i], mlp_ratio,
                  qkv_bias, qk_scale, local_ws[i], alpha,
                  with_attention=local_ws[i] != 0, with_merge=i < n_stages - 1)
            for i in range(n_stages)])
        for i in self.out_indices:
            if i != 0:
                self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))

    def forward(self, img):
        x, h, w = self.patch_embed(img)
        outs = []
        for i, stage in enumerate(self.layers):
            x = stage(x, h, w)
            if i in self.out_indices:
                y = x if i == 0 else getattr(self, f'norm{i}')(x)
                outs.append(y.reshape(-1, h, w, self.num_features[i])
                            .permute(0, 3, 1, 2).contiguous())
            if stage.downsample is not None:
                x, h, w = stage.downsample(x, h, w)
        return tuple(outs)


def build_reference_backbone(embed_dim=96, depths=(2, 2, 6, 2),
                             num_heads=(3, 6, 12, 24), alpha=0.9,
                             local_ws=(0, 0, 2, 1), mlp_ratio=4.0,
                             qkv_bias=True, qk_scale=None,
                             out_indices=(0, 1, 2, 3), patch_norm=True):
    """Build the reference backbone.  Stages whose local_ws is 0 have no
    attention (ConvFFN-only blocks), matching the reference's has_msa
    [0, 0, 1, 1] with local_ws [0, 0, s, 1].  Dropout and drop-path are not
    implemented (eval-only oracle, rates 0)."""
    return ReferenceLITv2(embed_dim, tuple(depths), tuple(num_heads), alpha,
                          tuple(local_ws), mlp_ratio, qkv_bias, qk_scale,
                          tuple(out_indices), patch_norm)


@torch.no_grad()
def randomize_(model, seed=0):
    """Fill every parameter and buffer of `model` with deterministic random
    values (in state_dict order, drawn on the CPU) so comparisons exercise
    every weight:
      * conv_offset weights: N(0, 0.5/sqrt(fan_in)) so offsets are a fraction
        of a pixel to about a pixel; its bias N(0, 0.2);
      * other >=2-d weights: N(0, 1/sqrt(fan_in));
      * 1-d weights (norm scales): 1 + N(0, 0.1); biases: N(0, 0.1);
      * BN running_mean N(0, 0.1), running_var U(0.5, 1.5),
        num_batches_tracked a random integer.
    Returns the model."""
    gen = torch.Generator().manual_seed(seed)
    for name, t in model.state_dict(keep_vars=True).items():
        shape = tuple(t.shape)
        leaf = name.rsplit('.', 1)[-1]
        if leaf == 'num_batches_tracked':
            new = torch.randint(1, 1000, shape, generator=gen, dtype=t.dtype)
        elif leaf == 'running_var':
            new = 0.5 + torch.rand(shape, generator=gen)
        elif leaf == 'running_mean':
            new = 0.1 * torch.randn(shape, generator=gen)
        elif name.endswith('conv_offset.weight'):
            fan_in = math.prod(shape[1:])
            new = torch.randn(shape, generator=gen) * (0.5 / math.sqrt(fan_in))
        elif name.endswith('conv_offset.bias'):
            new = 0.2 * torch.randn(shape, generator=gen)
        elif leaf == 'bias':
            new = 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) >= 2:
            fan_in = math.prod(shape[1:])
            new = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
        else:
            new = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        t.data.copy_(new.to(dtype=t.dtype, device=t.device))
    return model


# --------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------
def hilo_flops(dim, num_heads, window_size, alpha, H, W):
    """FLOPs (multiply-accumulates, as counted by the reference) of one HiLo
    layer on an H x W map; the reference's square-map formula generalised to
    Hp x Wp, the map padded to multiples of the window."""
    if window_size < 1:
        raise ValueError('window_size must be >= 1')
    s = window_size
    head_dim = dim // num_heads
    if s == 1:
        lo_heads = num_heads
    else:
        lo_heads = int(num_heads * alpha)
    lo_dim = lo_heads * head_dim
    hi_dim = (num_heads - lo_heads) * head_dim
    hp = s * math.ceil(H / s)
    wp = s * math.ceil(W / s)
    n_p = hp * wp
    kv_len = (hp // s) * (wp // s)
    # Hi-Fi: qkv projection, q@k and attn@v inside (Np / s^2) windows, proj
    hifi = (n_p * dim * hi_dim * 3 + kv_len * (s * s) ** 2 * hi_dim * 2
            + n_p * hi_dim ** 2)
    # Lo-Fi: q projection, kv projection on pooled map, q@k and attn@v, proj
    lofi = (n_p * dim * lo_dim + kv_len * dim * lo_dim * 2
            + n_p * lo_dim * kv_len * 2 + n_p * lo_dim ** 2)
    return int(hifi + lofi)
