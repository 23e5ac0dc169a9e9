"""litv2/layers.py: the plain-PyTorch stochastic depth that replaced mmcv's,
and the padding helpers."""
import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath as MmcvDropPath

from litv2.layers import (
    DropPath,
    contiguous_grad,
    crop_tokens,
    pad_to_min_size,
    pad_to_multiple,
)


def test_drop_path_same_draws_as_mmcv():
    """Same rule and same random numbers as mmcv's DropPath, which the
    model used before: seeded training runs are unchanged."""
    x = torch.randn(16, 5, 6, 8)
    ours, theirs = DropPath(0.3), MmcvDropPath(0.3)
    torch.manual_seed(3)
    expected = theirs.train()(x)
    torch.manual_seed(3)
    got = ours.train()(x)
    assert torch.equal(got, expected)
    kept = (got != 0).flatten(1).all(1)
    assert 0 < kept.sum() < 16  # some samples dropped, some kept
    assert torch.allclose(got[kept], x[kept] / 0.7)
    assert ours.eval()(x) is x
    assert DropPath(0.0).train()(x) is x


def test_padding_helpers():
    x = torch.randn(2, 3, 8, 12)
    assert pad_to_multiple(x, 4) is x
    padded = pad_to_multiple(x[:, :, :7, :10], 4)
    assert padded.shape == (2, 3, 8, 12)
    assert torch.equal(padded, F.pad(x[:, :, :7, :10], (0, 2, 0, 1)))
    tokens = x.permute(0, 2, 3, 1)[:, :7, :10]  # (B, H, W, C)
    padded = pad_to_multiple(tokens, 4, channels_last=True)
    assert padded.shape == (2, 8, 12, 3)
    assert torch.equal(padded[:, :7, :10], tokens)
    assert padded[:, 7:].abs().sum() == 0
    assert padded[:, :, 10:].abs().sum() == 0
    assert crop_tokens(padded, 7, 10).shape == (2, 7, 10, 3)
    assert crop_tokens(padded, 8, 12) is padded
    small = torch.randn(1, 2, 1, 3)
    assert pad_to_min_size(small, 2).shape == (1, 2, 2, 3)
    assert pad_to_min_size(x, 2) is x


def test_contiguous_grad():
    x = torch.randn(2, 3, 4, 5, requires_grad=True)
    y = contiguous_grad(x)
    assert torch.equal(y, x)
    grad = torch.randn(2, 5, 3, 4).permute(0, 2, 3, 1)  # NCHW-strided
    captured = []
    x.register_hook(lambda g: captured.append(g.is_contiguous()))
    y.backward(grad)
    assert captured == [True] and torch.equal(x.grad, grad)
    plain = torch.randn(2, 3)
    assert contiguous_grad(plain) is plain  # no grad: nothing added
