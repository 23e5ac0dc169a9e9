"""Small plain-PyTorch pieces of the LITv2 model: stochastic depth, the
input-size dependent padding, and the gradient layout of a stage's output.

The padding helpers decide from the input's size whether to pad. That
decision is data-dependent control flow for ``torch.fx``, so each one is a
function of its own: ``litv2.timm_models`` registers them with timm's
``register_notrace_function`` and FX keeps each call as one node. Their names
must not start with ``_``: FX only wraps public module-level functions.
"""
import torch
import torch.nn.functional as F
from torch import nn


def pad_to_multiple(x: torch.Tensor, multiple: int,
                    channels_last: bool = False) -> torch.Tensor:
    """Zero-pad the bottom and right of ``x`` so that both spatial sides are
    multiples of ``multiple``; ``x`` is ``(B, C, H, W)``, or ``(B, H, W, C)``
    with ``channels_last``. Returns ``x`` itself when nothing is needed."""
    if channels_last:
        height, width = x.shape[1], x.shape[2]
    else:
        height, width = x.shape[2], x.shape[3]
    pad_b = (multiple - height % multiple) % multiple
    pad_r = (multiple - width % multiple) % multiple
    if pad_b == 0 and pad_r == 0:
        return x
    if channels_last:
        return F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    return F.pad(x, (0, pad_r, 0, pad_b))


def crop_tokens(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The top-left ``height x width`` of a ``(B, H, W, C)`` map: undoes
    :func:`pad_to_multiple` with ``channels_last``. Returns ``x`` itself when
    it has that size (no slice, so nothing extra runs in backward)."""
    if x.shape[1] == height and x.shape[2] == width:
        return x
    return x[:, :height, :width, :]


def pad_to_min_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad the bottom and right of a ``(B, C, H, W)`` map whose sides are
    shorter than ``size`` up to ``size``; returns ``x`` itself otherwise."""
    pad_b = max(size - x.shape[2], 0)
    pad_r = max(size - x.shape[3], 0)
    if pad_b == 0 and pad_r == 0:
        return x
    return F.pad(x, (0, pad_r, 0, pad_b))


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


def contiguous_grad(x: torch.Tensor) -> torch.Tensor:
    """``x`` unchanged; in grad mode, its gradient is made contiguous.

    A stage output feeds layout-changing ops (the NCHW output copy, DTM's
    grid_sample), whose backward hands back NCHW-strided gradients. Without
    this, that layout would run back through the whole residual stream and
    every linear layer's backward would copy it first. (Under TorchScript,
    which cannot compile autograd Functions, ``x`` is returned as it is.)
    """
    if not torch.jit.is_scripting():
        if x.requires_grad:
            return _ContiguousGrad.apply(x)
    return x


def drop_path(x: torch.Tensor, drop_prob: float = 0.0,
              training: bool = False) -> torch.Tensor:
    """Stochastic depth per sample: zero the whole residual branch of a
    sample with probability ``drop_prob`` and scale the kept ones by
    ``1 / (1 - drop_prob)``."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    shape = (x.shape[0], ) + (1, ) * (x.ndim - 1)
    # floor(keep_prob + U[0, 1)) is 1 with probability keep_prob (the rule
    # of mmcv's DropPath, which this model used before; same random draws).
    keep = (keep_prob + torch.rand(shape, dtype=x.dtype,
                                   device=x.device)).floor()
    return x.div(keep_prob) * keep


class DropPath(nn.Module):
    """Stochastic depth (``drop_path``) as a module."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)
