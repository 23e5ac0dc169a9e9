"""benchmarks/flop_count.py: the benchmarks' multiply-add counter counts
fused attention on the CPU, and agrees with analytic counts: one SDPA call,
a HiLo layer (``litv2.hilo_flops``, the paper's convention) and timm's ViT
attention."""
import pytest
import torch
import torch.nn.functional as F

from benchmarks.flop_count import count_macs
from litv2 import HiLo, hilo_flops


def test_fused_cpu_attention_is_counted():
    q = torch.randn(1, 4, 256, 32)
    k = torch.randn(1, 4, 64, 32)
    v = torch.randn(1, 4, 64, 48)
    # q @ k^T and attn @ v: 4 heads x 256 queries x 64 keys x (32 + 48)
    expected = 4 * 256 * 64 * (32 + 48)
    assert count_macs(lambda: F.scaled_dot_product_attention(q, k, v)) == \
        expected
    with torch.no_grad():  # the counter turns autograd on itself
        assert count_macs(
            lambda: F.scaled_dot_product_attention(q, k, v)) == expected


def test_fused_cpu_attention_backward_is_counted():
    q = torch.randn(1, 2, 64, 16, requires_grad=True)
    k = torch.randn(1, 2, 32, 16, requires_grad=True)
    forward = 2 * 64 * 32 * (16 + 16)
    total = count_macs(
        lambda: F.scaled_dot_product_attention(q, k, k).sum().backward())
    # backward: the two products again for the gradients of the scores
    # and of v, and two more for q and k (2.5x forward in torch's formula)
    assert total == forward + int(2.5 * forward)


@pytest.mark.parametrize('window,alpha,size', [(2, 0.9, (14, 14)),
                                               (4, 0.5, (13, 18)),
                                               (1, 0.9, (7, 7))])
def test_hilo_layer_matches_the_analytic_count(window, alpha, size):
    layer = HiLo(384, 12, window_size=window, alpha=alpha).eval()
    x = torch.randn(1, *size, 384)
    assert count_macs(lambda: layer(x)) == hilo_flops(384, 12, window,
                                                      alpha, *size)


def test_vit_attention_matches_the_analytic_count():
    from timm.models.vision_transformer import Attention
    dim, tokens = 768, 196
    layer = Attention(dim, 12, qkv_bias=True).eval()
    x = torch.randn(1, tokens, dim)
    # qkv and output projections, q @ k^T and attn @ v
    expected = tokens * dim * 3 * dim + tokens * dim * dim \
        + 2 * tokens * tokens * dim
    assert count_macs(lambda: layer(x)) == expected
