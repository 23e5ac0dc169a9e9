"""Deformable token merging (DTM), the down-sampling between LITv2 stages."""
import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from torch import nn
from torchvision.ops import deform_conv2d


class DeformConv2dWithBias(nn.Module):
    """Deformable convolution whose offsets come from a plain convolution.

    mmcv's ``DeformConv2dPack`` refuses ``bias=True``, while the reference
    checkpoints hold a bias for this layer, so the op is wrapped here.
    Offsets are laid out as (dy, dx) per kernel position, row-major over the
    kernel, as in mmcv and torchvision; ``conv_offset`` starts at zero, so a
    freshly built layer is an ordinary strided convolution.
    Parameter names (``weight``, ``bias``, ``conv_offset``) match the
    reference checkpoints.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: int = 2, stride: int = 2):
        super().__init__()
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
        offset = self.conv_offset(x)
        return deform_conv2d(x, offset, self.weight, self.bias,
                             stride=self.stride)


class DeformableTokenMerging(nn.Module):
    """Halve the resolution and double the channels of a ``(B, H, W, C)`` map.

    Deformable conv (kernel 2, stride 2, no padding) -> norm (BN) -> GELU.
    As in the reference, an odd side loses its last row/column. A side shorter
    than the kernel is zero-padded to it (the reference fails there).
    """

    def __init__(self, in_channels: int, out_channels: int,
                 norm_cfg: dict = dict(type='BN')):
        super().__init__()
        self.dconv = DeformConv2dWithBias(in_channels, out_channels)
        # Named ``norm_layer`` to match the reference checkpoints.
        self.norm_layer = build_norm_layer(norm_cfg, out_channels)[1]
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)
        k = self.dconv.kernel_size
        pad_b, pad_r = max(k - x.shape[2], 0), max(k - x.shape[3], 0)
        if pad_b or pad_r:
            x = F.pad(x, (0, pad_r, 0, pad_b))
        x = self.act(self.norm_layer(self.dconv(x.contiguous())))
        return x.permute(0, 2, 3, 1).contiguous()
