"""HiLo attention: head split, special cases, padding, FLOPs."""
import pytest
import torch

from litv2 import HiLo, hilo_flops
from litv2.hilo import window_attention
from litv2.testing.reference import HiLoAttention as ReferenceHiLo
from litv2.testing.reference import hilo_flops as reference_hilo_flops
from litv2.testing.reference import randomize_
from tests.utils import rel_err


def paired_hilo(dim, heads, window, alpha, seed=0):
    reference = randomize_(
        ReferenceHiLo(dim, heads, qkv_bias=True, window_size=window,
                      alpha=alpha), seed)
    hilo = HiLo(dim, heads, window_size=window, alpha=alpha).eval()
    hilo.load_state_dict(reference.state_dict(), strict=True)
    return reference, hilo


def plain_multihead_attention(x, hilo):
    """Global MSA written out by hand, using HiLo's Lo-Fi weights."""
    b, h, w, c = x.shape
    heads, hd = hilo.num_heads, c // hilo.num_heads
    tokens = x.reshape(b, h * w, c)
    q = (tokens @ hilo.l_q.weight.T + hilo.l_q.bias).view(b, -1, heads, hd)
    kv = tokens @ hilo.l_kv.weight.T + hilo.l_kv.bias
    k = kv[..., :c].view(b, -1, heads, hd)
    v = kv[..., c:].view(b, -1, heads, hd)
    attn = torch.einsum('bqhd,bkhd->bhqk', q, k) * hd**-0.5
    out = torch.einsum('bhqk,bkhd->bqhd', attn.softmax(-1), v)
    out = out.reshape(b, -1, c)
    out = out @ hilo.l_proj.weight.T + hilo.l_proj.bias
    return out.view(b, h, w, c)


@pytest.mark.parametrize('heads,alpha,lofi,hifi', [
    (12, 0.9, 10, 2), (12, 0.5, 6, 6), (3, 0.9, 2, 1), (4, 0.0, 0, 4),
    (4, 1.0, 4, 0), (24, 0.9, 21, 3)])
def test_head_split(heads, alpha, lofi, hifi):
    hilo = HiLo(heads * 8, heads, window_size=2, alpha=alpha)
    assert (hilo.lofi_heads, hilo.hifi_heads) == (lofi, hifi)
    names = {n.split('.')[0] for n, _ in hilo.named_parameters()}
    assert ('l_q' in names) == (lofi > 0) and ('h_qkv' in names) == (hifi > 0)


def test_window_one_is_plain_multihead_attention():
    hilo = HiLo(64, 4, window_size=1, alpha=0.3).eval()
    assert (hilo.lofi_heads, hilo.hifi_heads) == (4, 0)
    for p in hilo.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(2, 5, 7, 64)
    with torch.no_grad():
        assert rel_err(hilo(x), plain_multihead_attention(x, hilo)) < 1e-5


@pytest.mark.parametrize('window', [2, 3, 4])
@pytest.mark.parametrize('alpha', [0.0, 0.5, 0.9, 1.0])
@pytest.mark.parametrize('size', [(8, 8), (7, 9), (5, 13), (1, 3)])
def test_equals_reference_algorithm(window, alpha, size):
    reference, hilo = paired_hilo(48, 6, window, alpha)
    x = torch.randn(2, *size, 48)
    with torch.no_grad():
        expected = reference(x.flatten(1, 2), *size).view_as(x)
        assert rel_err(hilo(x), expected) < 1e-5


def test_padding_is_zeros_before_both_branches():
    """A map that is not a multiple of the window is zero-padded before both
    branches (so padded cells count in Lo-Fi's averages) and cropped after."""
    _, hilo = paired_hilo(32, 4, 4, 1.0)
    x = torch.randn(1, 6, 6, 32)
    with torch.no_grad():
        padded = torch.nn.functional.pad(x, (0, 0, 0, 2, 0, 2))
        assert torch.allclose(hilo(x), hilo(padded)[:, :6, :6], atol=1e-6)


def test_gradients_flow_to_every_projection():
    hilo = HiLo(32, 4, window_size=2, alpha=0.5)
    hilo(torch.randn(2, 5, 6, 32)).square().mean().backward()
    for name, p in hilo.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_flops_reference_figure():
    assert hilo_flops(384, 12, 2, 0.5, 14, 14) == 83_467_776
    assert HiLo(384, 12, 2, 0.5).flops(14, 14) == 83_467_776


@pytest.mark.parametrize('dim,heads,window,alpha,h,w', [
    (384, 12, 2, 0.9, 50, 80), (768, 24, 1, 0.9, 25, 40),
    (384, 12, 4, 0.9, 21, 33), (128, 4, 2, 0.0, 7, 7), (128, 4, 2, 1.0, 7, 7)])
def test_flops_match_reference_formula(dim, heads, window, alpha, h, w):
    assert hilo_flops(dim, heads, window, alpha, h, w) == \
        reference_hilo_flops(dim, heads, window, alpha, h, w)


@pytest.mark.parametrize('kwargs,word', [
    (dict(dim=10, num_heads=3), 'num_heads'),
    (dict(dim=12, num_heads=3, alpha=1.5), 'alpha'),
    (dict(dim=12, num_heads=3, alpha=-0.1), 'alpha'),
    (dict(dim=12, num_heads=3, window_size=0), 'window_size'),
])
def test_invalid_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        HiLo(**kwargs)


def _qkv(shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g).to(dtype) for _ in range(3)]


@pytest.mark.parametrize('tokens', [4, 9, 16])
def test_window_attention_equals_fused_attention(tokens):
    """Hi-Fi's explicit window attention computes what
    F.scaled_dot_product_attention computes: in float64 to its rounding
    (1e-12), in fp32 to fp32's (1e-5 relative to the output), values and
    gradients."""
    F = torch.nn.functional
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        q, k, v = (t.requires_grad_() for t in _qkv((50, 3, tokens, 32),
                                                     dtype))
        out = window_attention(q, k, v, 32**-0.5)
        grads = torch.autograd.grad(out.square().sum(), (q, k, v))
        fused = F.scaled_dot_product_attention(q, k, v, scale=32**-0.5)
        fused_grads = torch.autograd.grad(fused.square().sum(), (q, k, v))
        assert out.dtype == dtype
        assert rel_err(out, fused) < tol
        for g, f in zip(grads, fused_grads):
            assert rel_err(g, f) < tol


def test_window_attention_in_low_precision():
    """bf16: softmax in fp32, the result as close to fp32's as bf16's 8-bit
    rounding of q, k, v and the products allows (measured 0.003 mean
    relative; bound 0.01). fp16: the fused kernel, which accumulates in
    fp32, so that scores beyond fp16's range (65504) stay finite."""
    F = torch.nn.functional
    q, k, v = _qkv((50, 3, 4, 32))
    exact = window_attention(q, k, v, 32**-0.5)
    low = window_attention(*(t.bfloat16() for t in (q, k, v)), 32**-0.5)
    assert low.dtype == torch.bfloat16
    err = (low.float() - exact).abs().mean() / exact.abs().mean()
    assert err < 0.01, err
    big = [t.half() * 100 for t in (q, k, v)]
    # the explicit products would overflow fp16 (|q.k| ~ 2e5)
    assert torch.isinf(big[0] @ big[1].transpose(-2, -1)).any()
    out = window_attention(*big, 32**-0.5)
    assert torch.equal(out, F.scaled_dot_product_attention(*big,
                                                           scale=32**-0.5))
    assert torch.isfinite(out).all()
    # and right: as close to the fp32 result on the same fp16 inputs as
    # fp16's 11-bit rounding of the output allows (a few units of 2^-11)
    exact = window_attention(*(t.float() for t in big), 32**-0.5)
    assert ((out.float() - exact).abs()
            <= 4 * 2.0**-11 * exact.abs().amax(-1, keepdim=True)).all()


def test_window_attention_dropout_only_in_training():
    q, k, v = _qkv((20, 2, 4, 8))
    assert torch.equal(window_attention(q, k, v, 0.3, 0.0),
                       window_attention(q, k, v, 0.3, 0.0))
    torch.manual_seed(0)
    dropped = window_attention(q, k, v, 0.3, 0.5)
    assert not torch.allclose(dropped, window_attention(q, k, v, 0.3, 0.0))


def test_window_attention_uses_the_documented_cuda_batch_limit():
    import inspect

    from litv2.hilo import SDPA_MAX_CUDA_BATCH, window_attention
    source = inspect.getsource(window_attention)
    assert f'max_cuda_batch = {SDPA_MAX_CUDA_BATCH}' in source
