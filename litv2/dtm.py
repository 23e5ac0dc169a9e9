"""Deformable token merging (DTM), the down-sampling between LITv2 stages."""
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .layers import pad_to_min_size


def deformable_sampling_grid(offset: torch.Tensor, height: int, width: int,
                             kernel_size: int) -> torch.Tensor:
    """``grid_sample`` grid of a deformable conv whose stride is its kernel.

    With stride == kernel size and no padding, kernel position ``(ki, kj)`` of
    output ``(i, j)`` reads input ``(k*i + ki + dy, k*j + kj + dx)``. Laid out
    as a ``(k*Ho, k*Wo)`` image, the samples sit at their own pixel index plus
    the offset, and an ordinary ``k x k`` conv with stride ``k`` over that
    image is the deformable conv. ``align_corners=True`` normalisation and zero
    padding reproduce the bilinear rule of mmcv's / torchvision's op (corners
    outside the map contribute zero).

    Args:
        offset: ``(B, 2*k*k, Ho, Wo)``, (dy, dx) per kernel position,
            row-major over the kernel (mmcv / torchvision layout).
        height, width: size of the sampled map (each >= 2).
    Returns:
        ``(B, k*Ho, k*Wo, 2)`` grid of (x, y) in [-1, 1] coordinates, in
        fp32 (fp64 for an fp64 offset).
    """
    b, _, ho, wo = offset.shape
    k = kernel_size
    off = offset.view(b, k, k, 2, ho, wo).permute(0, 4, 1, 5, 2, 3)
    off = off.reshape(b, k * ho, k * wo, 2)
    # Positions in at least fp32, whatever the offset's dtype: under autocast
    # ``conv_offset`` gives bf16/fp16, whose 8/11-bit mantissas would put a
    # sample at column 300 one or two pixels (bf16) or a quarter pixel (fp16)
    # away. Adding the fp32 index promotes the sum (fp64 stays fp64).
    rows = torch.arange(k * ho, dtype=torch.float32, device=offset.device)
    cols = torch.arange(k * wo, dtype=torch.float32, device=offset.device)
    y = (off[..., 0] + rows.view(-1, 1)) * (2.0 / (height - 1)) - 1.0
    x = (off[..., 1] + cols) * (2.0 / (width - 1)) - 1.0
    return torch.stack((x, y), dim=-1)


def bilinear_sample_by_gather(x: torch.Tensor,
                              grid: torch.Tensor) -> torch.Tensor:
    """``F.grid_sample(x, grid, 'bilinear', 'zeros', align_corners=True)``
    written with ``gather``, for deterministic training on CUDA.

    grid_sample's CUDA backward adds into the input gradient with atomics
    (PyTorch refuses it under ``torch.use_deterministic_algorithms``);
    gather's backward has a deterministic CUDA implementation that PyTorch
    selects in that mode. The same bilinear rule: each of the four corners
    of a sample contributes only where it lies inside the map.

    Args:
        x: ``(B, C, H, W)``, typically a channels-last view (DTM's input):
            the corners are gathered as whole channel vectors.
        grid: ``(B, Ho, Wo, 2)`` (x, y) in [-1, 1], as for grid_sample.
    Returns:
        ``(B, C, Ho, Wo)`` as a channels-last view, in the grid's dtype.
    """
    b, c, h, w = x.shape
    ho, wo = grid.shape[1], grid.shape[2]
    tokens = x.permute(0, 2, 3, 1).reshape(b, h * w, c).to(grid.dtype)
    px = (grid[..., 0] + 1) * ((w - 1) / 2)
    py = (grid[..., 1] + 1) * ((h - 1) / 2)
    x0, y0 = px.floor(), py.floor()
    fx, fy = px - x0, py - y0
    out = None
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
            index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long()
            corner = tokens.gather(
                1, index.view(b, -1, 1).expand(b, ho * wo, c))
            weight = (wy * wx * inside).view(b, -1, 1)
            out = corner * weight if out is None else out + corner * weight
    return out.view(b, ho, wo, c).permute(0, 3, 1, 2)


def deterministic_cuda(x: torch.Tensor) -> bool:
    """Whether ``x`` is a CUDA tensor while PyTorch is asked for
    deterministic algorithms (``torch.use_deterministic_algorithms``, which
    mmengine's ``randomness=dict(deterministic=True)`` calls). The flag is
    read first: under torch.fx ``x`` is a Proxy."""
    return (torch.are_deterministic_algorithms_enabled()
            and isinstance(x, torch.Tensor) and x.is_cuda)


class DeformConv2dWithBias(nn.Module):
    """Deformable convolution whose offsets come from a plain convolution.

    Computed as bilinear sampling (``F.grid_sample``) followed by an ordinary
    strided convolution, which equals mmcv's / torchvision's deformable conv
    for non-overlapping kernels (stride == kernel size, no padding), is several
    times faster on CPU than their compiled op (mostly in backward), runs the
    same on GPU, and exports to ONNX with standard ops (GridSample, Conv).
    mmcv's ``DeformConv2dPack`` would also refuse the bias that the reference
    checkpoints hold. Offsets are laid out as (dy, dx) per kernel position,
    row-major over the kernel, as in mmcv and torchvision; ``conv_offset``
    starts at zero, so a freshly built layer is an ordinary strided conv.
    Parameter names (``weight``, ``bias``, ``conv_offset``) match the
    reference checkpoints.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: int = 2, stride: int = 2):
        super().__init__()
        if stride != kernel_size:
            raise ValueError(
                f'DeformConv2dWithBias supports only stride == kernel_size '
                f'(non-overlapping kernels), got kernel_size={kernel_size}, '
                f'stride={stride}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.conv_offset = nn.Conv2d(in_channels, 2 * kernel_size**2,
                                     kernel_size, stride=stride)
        self.reset_parameters()

    def reset_parameters(self):
        # Default init of a conv layer (kaiming-uniform weight, fan-in bias).
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        bound = 1 / (self.in_channels * self.kernel_size**2)**0.5
        nn.init.uniform_(self.bias, -bound, bound)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, '
                f'kernel_size={self.kernel_size}, stride={self.stride}')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height < 2 or width < 2:
            raise ValueError(f'DeformConv2dWithBias needs a map of at least '
                             f'2x2, got {height}x{width}')
        grid = deformable_sampling_grid(self.conv_offset(x), height, width,
                                        self.kernel_size)
        # Bilinear weights in the grid's precision (>= fp32; autocast casts
        # grid_sample to fp32 on CPU and CUDA anyway); a model converted to
        # fp16/bf16 as a whole gets its own dtype back for the convolution.
        # (nested: TorchScript skips a branch only under is_scripting alone)
        if not torch.jit.is_scripting():
            if deterministic_cuda(x):
                sampled = bilinear_sample_by_gather(x, grid)
                return F.conv2d(sampled.to(x.dtype), self.weight, self.bias,
                                stride=self.stride)
        sampled = F.grid_sample(x.to(grid.dtype), grid, mode='bilinear',
                                padding_mode='zeros', align_corners=True)
        return F.conv2d(sampled.to(x.dtype), self.weight, self.bias,
                        stride=self.stride)


class DeformableTokenMerging(nn.Module):
    """Halve the resolution and double the channels of a ``(B, H, W, C)`` map.

    Deformable conv (kernel 2, stride 2, no padding) -> norm (BN) -> GELU.
    As in the reference, an odd side loses its last row/column. A side shorter
    than the kernel is zero-padded to it (the reference fails there).
    ``norm_layer(out_channels)`` builds the norm (BatchNorm2d by default).
    """

    def __init__(self, in_channels: int, out_channels: int,
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d):
        super().__init__()
        self.dconv = DeformConv2dWithBias(in_channels, out_channels)
        # Named ``norm_layer`` to match the reference checkpoints.
        self.norm_layer = norm_layer(out_channels)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_to_min_size(x.permute(0, 3, 1, 2), self.dconv.kernel_size)
        # The channels-last view is what grid_sample reads fastest on CPU.
        x = self.act(self.norm_layer(self.dconv(x)))
        return x.permute(0, 2, 3, 1).contiguous()
