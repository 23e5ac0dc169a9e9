"""``litv2.fast_paths.Linear``: oneDNN's matmul in float32 CPU inference, the
plain ``F.linear`` everywhere else, the same values and parameters as
``nn.Linear`` in both."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from litv2 import fast_paths
from litv2.fast_paths import Linear, onednn_applies

needs_onednn = pytest.mark.skipif(not fast_paths.ONEDNN_AVAILABLE,
                                  reason='this PyTorch has no oneDNN linear')


def _layer(in_features=96, out_features=40, bias=True):
    torch.manual_seed(0)
    layer = Linear(in_features, out_features, bias=bias)
    with torch.no_grad():  # trained-like: a bias that matters
        layer.weight.normal_(std=0.3)
        if bias:
            layer.bias.normal_(std=0.3)
    return layer


def _gemm_error_bound(x, layer):
    """Rounding-error bound of a float32 ``x @ W^T + b`` with any order of
    additions (Higham, Accuracy and Stability, 3.5): ``gamma_(K+1)`` times
    the same product on absolute values, with ``gamma_n ~ n * 2^-24``."""
    k = x.shape[-1] + 1
    magnitude = F.linear(x.double().abs(), layer.weight.double().abs(),
                         layer.bias.double().abs())
    return 1.01 * k * 2.0**-24 * magnitude


@needs_onednn
@pytest.mark.parametrize('bias', [True, False])
def test_cpu_inference_takes_onednn_and_keeps_the_values(bias):
    """No grad, float32, CPU: oneDNN computes it, within the float32 GEMM
    bound of the float64 product (which a missing bias or a wrong weight
    layout would exceed by orders of magnitude)."""
    layer = _layer(bias=bias)
    x = torch.randn(2, 7, 5, 96)
    if not bias:
        layer.bias = None
    with torch.no_grad():
        assert onednn_applies(x, layer.weight)
        out = layer(x)
        exact = F.linear(x.double(), layer.weight.double(),
                         None if layer.bias is None else layer.bias.double())
    assert out.dtype == torch.float32 and out.shape == (2, 7, 5, 40)
    bound = _gemm_error_bound(x, layer if bias else _layer())
    assert ((out.double() - exact).abs() <= bound).all()


@needs_onednn
def test_strided_and_empty_inputs():
    layer = _layer()
    x = torch.randn(3, 96, 4, 5).permute(0, 2, 3, 1)  # channels-last view
    with torch.no_grad():
        out = layer(x)
        assert (out.double() - F.linear(x.double(), layer.weight.double(),
                                        layer.bias.double())).abs().le(
            _gemm_error_bound(x, layer)).all()
        assert layer(torch.randn(0, 4, 96)).shape == (0, 4, 40)


def test_everywhere_else_it_is_f_linear_exactly():
    """float64, autograd, autocast, tracing, scripting and torch.fx get
    ``F.linear`` itself: bit-equal values, its gradients, autocast's
    dtype."""
    layer = _layer()
    x = torch.randn(4, 96)
    assert not onednn_applies(x.double(), layer.weight.double())
    double = _layer().double()
    with torch.no_grad():
        assert torch.equal(double(x.double()),
                           F.linear(x.double(), double.weight, double.bias))

    xg = x.clone().requires_grad_()
    assert not onednn_applies(xg, layer.weight)
    out = layer(xg)
    assert torch.equal(out, F.linear(x, layer.weight, layer.bias))
    out.sum().backward()
    xf = x.clone().requires_grad_()
    F.linear(xf, layer.weight, layer.bias).sum().backward()
    assert torch.equal(xg.grad, xf.grad)

    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        assert not onednn_applies(x, layer.weight)
        out = layer(x)
        assert out.dtype == torch.bfloat16
        assert torch.equal(out, F.linear(x, layer.weight, layer.bias))

    with torch.no_grad():
        traced = torch.jit.trace(layer, x)
        assert 'aten::linear' in str(traced.graph)
        assert torch.equal(traced(x), F.linear(x, layer.weight, layer.bias))
        scripted = torch.jit.script(layer)
        assert torch.equal(scripted(x), F.linear(x, layer.weight,
                                                 layer.bias))
        graph = torch.fx.symbolic_trace(layer)
        assert any(n.target is F.linear for n in graph.graph.nodes)


def test_same_parameters_and_repr_as_nn_linear():
    layer = _layer()
    plain = nn.Linear(96, 40)
    plain.load_state_dict(layer.state_dict(), strict=True)
    assert isinstance(layer, nn.Linear)
    assert repr(layer) == repr(plain)
    x = torch.randn(3, 96)
    with torch.no_grad():
        assert torch.allclose(layer(x), plain(x), rtol=0, atol=1e-5)


def _ran(op_name, fn):
    with torch.profiler.profile() as prof:
        out = fn()
    return out, any(op_name in e.name for e in prof.events())


@needs_onednn
def test_linear_runs_on_onednn_only_without_grad():
    layer = _layer()
    x = torch.randn(5, 96)
    with torch.no_grad():
        assert _ran('_linear_pointwise', lambda: layer(x))[1]
    assert not _ran('_linear_pointwise', lambda: layer(x))[1]
