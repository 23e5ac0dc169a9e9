"""fp16/bf16 autocast is safe, checked on CPU (this project's machines have no
GPU): S/M/B forward/backward give finite losses and gradients on random and
on large-magnitude images, and HiLo's attention stays finite where its
logits exceed the fp16 range, because F.scaled_dot_product_attention
accumulates q.k and the softmax in fp32 (CPU kernels: flash and math).
Full-width S/M/B on CPU are slow, so the images are 64x64."""
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from litv2 import LITV2_ARCHS, LITv2, local_windows
from litv2.hilo import HiLo

FP16_MAX = torch.finfo(torch.float16).max


pytestmark = pytest.mark.usefixtures('one_thread')


def forward_backward(model, images, dtype):
    model.zero_grad()
    with torch.autocast('cpu', dtype=dtype):
        outs = model(images)
        # a loss on every output, as a detector's would be
        loss = sum(o.float().square().mean() for o in outs)
    loss.backward()
    return outs, loss


@pytest.mark.parametrize('arch', ['s', 'm', 'b'])
def test_bf16_autocast_forward_backward_is_finite(arch):
    torch.manual_seed(0)
    model = LITv2(**LITV2_ARCHS[arch], alpha=0.9, local_ws=local_windows(2),
                  drop_path_rate=0.0).train()
    # normalised images, then raw pixels x 40 (values up to 1e4)
    for images in (torch.randn(1, 3, 64, 64),
                   torch.rand(1, 3, 64, 64) * 255 * 40):
        outs, loss = forward_backward(model, images, torch.bfloat16)
        assert outs[0].dtype == torch.bfloat16  # autocast did act
        assert torch.isfinite(loss)
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert len(grads) == len(list(model.parameters()))
        assert all(torch.isfinite(g).all() for g in grads)


def test_fp16_autocast_forward_backward_is_finite():
    """fp16 proper (slower than bf16 on CPU: S only, the large input)."""
    torch.manual_seed(0)
    model = LITv2(**LITV2_ARCHS['s'], alpha=0.9, local_ws=local_windows(2),
                  drop_path_rate=0.0).train()
    images = torch.rand(1, 3, 64, 64) * 255 * 40
    outs, loss = forward_backward(model, images, torch.float16)
    assert outs[0].dtype == torch.float16
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def max_logit(hilo: HiLo, x: torch.Tensor) -> float:
    """The largest |q.k| * scale of the Lo-Fi branch, in fp32."""
    b, h, w, c = x.shape
    q = hilo.l_q(x).reshape(b, -1, hilo.lofi_heads, hilo.head_dim)
    pooled = F.avg_pool2d(x.permute(0, 3, 1, 2), hilo.window_size)
    k = hilo.l_kv(pooled.permute(0, 2, 3, 1)).reshape(
        b, -1, 2, hilo.lofi_heads, hilo.head_dim)[:, :, 0]
    logits = torch.einsum('bqhd,bkhd->bhqk', q, k) * hilo.scale
    return logits.abs().max().item()


@pytest.mark.parametrize('backend', [None, SDPBackend.MATH])
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_attention_logits_beyond_fp16_range_stay_finite(dtype, backend):
    torch.manual_seed(0)
    hilo = HiLo(64, 4, window_size=2, alpha=0.5)
    x = torch.randn(1, 8, 10, 64) * 300  # odd width: padding too
    with torch.no_grad():
        assert max_logit(hilo, x) > FP16_MAX  # would overflow in fp16
        expected = hilo(x)
        with torch.autocast('cpu', dtype=dtype):
            if backend is None:  # what the dispatcher picks (CPU: flash)
                out = hilo(x)
            else:
                with sdpa_kernel(backend):
                    out = hilo(x)
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    if dtype == torch.float16:
        # (bf16's 8-bit mantissa moves logits of 1e5 by hundreds: finite,
        # but a different near-one-hot softmax, so no closeness there)
        err = ((out.float() - expected).abs().max() / expected.abs().max())
        assert err < 2e-2, err
