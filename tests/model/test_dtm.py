"""Deformable token merging against a direct computation."""
import pytest
import torch
import torch.nn.functional as F

from litv2 import DeformableTokenMerging, DeformConv2dWithBias
from litv2.testing.reference import deform_conv2d_direct
from tests.utils import rel_err


def random_dconv(c_in=8, c_out=16, offset_std=0.3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    conv = DeformConv2dWithBias(c_in, c_out)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
        conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen))
        conv.conv_offset.weight.copy_(
            offset_std * torch.randn(conv.conv_offset.weight.shape,
                                     generator=gen))
        conv.conv_offset.bias.copy_(
            torch.randn(conv.conv_offset.bias.shape, generator=gen))
    return conv


def test_fresh_layer_is_strided_convolution():
    conv = DeformConv2dWithBias(8, 16)
    assert conv.bias is not None and conv.conv_offset.weight.abs().sum() == 0
    x = torch.randn(2, 8, 9, 12)
    expected = F.conv2d(x, conv.weight, conv.bias, stride=2)
    assert rel_err(conv(x), expected) < 1e-6


def test_deformable_sampling_equals_direct_computation():
    for size in [(8, 8), (9, 7), (17, 30)]:
        conv = random_dconv(seed=size[0])
        x = torch.randn(2, 8, *size)
        offset = conv.conv_offset(x)
        assert offset.abs().max() > 0.5  # offsets really move the samples
        expected = deform_conv2d_direct(x, offset, conv.weight, conv.bias)
        actual = conv(x)
        assert actual.shape[-2:] == (size[0] // 2, size[1] // 2)
        assert rel_err(actual, expected) < 1e-5


@pytest.mark.parametrize('grad', [True, False])
def test_token_merging_is_conv_norm_gelu_on_tokens(grad):
    """With and without autograd; contiguous (B, H, W, C) tokens out."""
    dtm = DeformableTokenMerging(8, 16).eval()
    dtm.dconv = random_dconv()
    with torch.no_grad():
        dtm.norm_layer.running_mean.uniform_(-1, 1)
        dtm.norm_layer.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 11, 6, 8)  # (B, H, W, C); odd H loses its last row
    nchw = x.permute(0, 3, 1, 2)
    merged = deform_conv2d_direct(nchw, dtm.dconv.conv_offset(nchw),
                                  dtm.dconv.weight, dtm.dconv.bias)
    expected = F.gelu(dtm.norm_layer(merged)).permute(0, 2, 3, 1)
    with torch.set_grad_enabled(grad):
        actual = dtm(x)
    assert actual.shape == (2, 5, 3, 16) and actual.is_contiguous()
    assert rel_err(actual, expected) < 1e-5


def test_map_smaller_than_kernel_is_padded():
    dtm = DeformableTokenMerging(4, 8).eval()
    assert dtm(torch.randn(1, 1, 5, 4)).shape == (1, 1, 2, 8)


def test_gradients_reach_offsets_and_bias():
    conv = random_dconv()
    conv(torch.randn(2, 8, 10, 10)).square().mean().backward()
    for name in ('weight', 'bias', 'conv_offset.weight', 'conv_offset.bias'):
        grad = conv.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_sampling_formulation_matches_compiled_op_with_gradients():
    """Values and gradients equal torchvision's compiled deformable conv."""
    from torchvision.ops import deform_conv2d
    conv = random_dconv(seed=3).double()
    for size in [(2, 2), (9, 7), (16, 21)]:
        x = torch.randn(2, 8, *size, dtype=torch.float64, requires_grad=True)
        # large offsets: samples land between pixels and outside the map
        offset = (2.0 * torch.randn(2, 8, size[0] // 2, size[1] // 2,
                                    dtype=torch.float64)).requires_grad_()
        conv.conv_offset.forward = lambda _x, o=offset: o
        params = (x, offset, conv.weight, conv.bias)
        expected = deform_conv2d(x, offset, conv.weight, conv.bias, stride=2)
        grads_expected = torch.autograd.grad(expected.square().sum(), params)
        actual = conv(x)
        grads_actual = torch.autograd.grad(actual.square().sum(), params)
        assert rel_err(actual, expected) < 1e-10
        for name, g, e in zip(('x', 'offset', 'weight', 'bias'),
                              grads_actual, grads_expected):
            assert rel_err(g, e) < 1e-10, (size, name)


def test_overlapping_kernel_and_tiny_map_are_refused():
    with pytest.raises(ValueError, match='stride == kernel_size'):
        DeformConv2dWithBias(4, 8, kernel_size=3, stride=2)
    with pytest.raises(ValueError, match='at least 2x2'):
        DeformConv2dWithBias(4, 8)(torch.randn(1, 4, 1, 6))


def test_gather_sampling_equals_grid_sample():
    """The deterministic CUDA path (bilinear sampling by gather) computes
    grid_sample's values and gradients, for the input and the grid, with
    samples inside, on the border and outside the map (fp64: the same
    arithmetic up to the order of a few additions)."""
    from litv2.dtm import bilinear_sample_by_gather
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 9, 7, 5, 3, dtype=torch.float64, generator=gen)
    x = x.view(2, 9 * 7, 5, 3).permute(0, 3, 1, 2)  # channels-last view
    grid = torch.rand(2, 6, 4, 2, dtype=torch.float64, generator=gen)
    grid = grid * 2.6 - 1.3  # about a fifth of the samples fall outside
    grid[0, 0, 0] = torch.tensor([1.0, -1.0])  # exactly on corners
    grid[0, 0, 1] = torch.tensor([-1.0, 1.0])
    outputs, grads = [], []
    for sample in (bilinear_sample_by_gather,
                   lambda a, g: F.grid_sample(a, g, mode='bilinear',
                                              padding_mode='zeros',
                                              align_corners=True)):
        xi = x.detach().clone().requires_grad_()
        gi = grid.detach().clone().requires_grad_()
        out = sample(xi, gi)
        weights = torch.randn(out.shape, dtype=torch.float64,
                              generator=torch.Generator().manual_seed(1))
        (out * weights).sum().backward()
        outputs.append(out)
        grads.append((xi.grad, gi.grad))
    assert outputs[0].shape == outputs[1].shape == (2, 3, 6, 4)
    assert (outputs[1] == 0).any()  # some samples wholly outside
    assert rel_err(outputs[0], outputs[1]) < 1e-12
    assert rel_err(grads[0][0], grads[1][0]) < 1e-12
    # grid gradients: equal except where a sample sits exactly on a pixel
    # line (one-sided derivatives may differ there: the corners set above)
    inner = torch.ones_like(grid, dtype=torch.bool)
    inner[0, 0, :2] = False
    assert rel_err(grads[0][1][inner], grads[1][1][inner]) < 1e-12
