"""Mixed precision keeps LITv2's meaning: under bf16 / fp16 autocast (on CPU,
which supports both) the backbone's features stay within the precision's own
rounding of the fp32 features, for S/M/B, windows 2 and 4, at the detection
size and an odd size, with weights as a trained model has them; a training
step's gradients too. DTM's sampling positions are computed in fp32 whatever
the autocast dtype (litv2/dtm.py): computed in bf16 they land pixels away.
Also: losses and gradients stay finite on large-magnitude images, and HiLo's
attention stays finite where its logits exceed the fp16 range, because
F.scaled_dot_product_attention accumulates q.k and the softmax in fp32.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from litv2 import LITV2_ARCHS, local_windows
from litv2.dtm import DeformConv2dWithBias, deformable_sampling_grid
from litv2.hilo import HiLo
from litv2.testing.amp_accuracy import (
    autocast_stage_errors,
    mean_relative_error,
    trained_like_backbone,
)
from litv2_openmmlab import LITv2

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


@pytest.mark.slow
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


# Bounds on the per-stage mean relative error against fp32 (mean |amp - fp32|
# / mean |fp32|). With DTM's positions in fp32 what remains is each
# precision's own rounding (bf16 keeps 8 significant bits, relative step
# 2**-8 = 0.004; fp16 11 bits, 2**-11 = 0.0005) compounded over 12 (S) or
# 24 (M, B) residual blocks: measured worst stages bf16 S 0.016 / M 0.024 /
# B 0.031, fp16 0.002 / 0.003 / 0.004 (issue 12, 800x1280). The bounds
# leave ~1.3-2x of that as margin and are 10-20x below the errors of
# positions computed in the low precision (bf16 0.26-0.64, fp16 0.07-0.10).
BF16_BOUND = dict(s=0.03, m=0.04, b=0.04)
FP16_BOUND = 0.005
# One size for both precisions: a strip as wide as the detection size (the
# sampling positions reach as far along x as at 800x1280, which decides the
# rounding of a position) with odd sides (99 -> 25, 13, 7, 4 and 1283 -> 321,
# 161, 81, 41: padding in every stage), at a tenth of 800x1280's cost.
# Measured on it against 800x1280 (AMD EPYC, seed 1, S w2 / w4): worst stage
# bf16 0.0128 / 0.0128 on both sizes; M 0.0181, B 0.0189 on the strip
# (333x517: 0.0157, 0.0140); fp16 S 0.0016, M 0.0023, B 0.0028.
AMP_SIZES = ((99, 1283), )


@pytest.mark.slow
@pytest.mark.parametrize('window', [2, 4])
@pytest.mark.parametrize('arch', ['s', 'm', 'b'])
def test_autocast_features_match_fp32(arch, window):
    torch.set_num_threads(2)  # the full-size models are worth the threads
    model = trained_like_backbone(arch, window, seed=1)
    gen = torch.Generator().manual_seed(0)
    report = {}
    for size in AMP_SIZES:
        images = torch.randn(1, 3, *size, generator=gen)
        with torch.no_grad():
            reference = model(images)  # fp32, shared by both precisions
        for dtype in (torch.bfloat16, torch.float16):
            report[size, dtype] = autocast_stage_errors(model, images, dtype,
                                                        reference)
    for (size, dtype), errors in report.items():
        bound = BF16_BOUND[arch] if dtype == torch.bfloat16 else FP16_BOUND
        assert max(errors) <= bound, (arch, window, size, dtype, errors)


def test_sampling_positions_are_fp32_under_autocast():
    """A bf16 offset (what conv_offset gives under autocast) still yields
    exact fp32 positions: the integer pixel index is not rounded with it."""
    ho, wo, k = 5, 160, 2  # positions up to 2 * 160: bf16 steps of 2 there
    offset = torch.full((1, 2 * k * k, ho, wo), 0.25)
    grid = deformable_sampling_grid(offset.bfloat16(), 2 * ho, 2 * wo, k)
    assert grid.dtype == torch.float32
    assert torch.equal(grid, deformable_sampling_grid(offset, 2 * ho, 2 * wo,
                                                      k))
    double = deformable_sampling_grid(offset.double(), 2 * ho, 2 * wo, k)
    assert double.dtype == torch.float64  # fp64 parity tests stay fp64


def test_deformable_conv_under_autocast_and_in_half():
    """Under autocast and for a model converted to fp16/bf16 as a whole, the
    deformable conv is the fp32 one up to the conv's own rounding."""
    torch.manual_seed(0)
    conv = DeformConv2dWithBias(16, 32)
    with torch.no_grad():
        conv.conv_offset.weight.normal_(0, 0.1)
        conv.conv_offset.bias.normal_(0, 0.5)
    x = torch.randn(1, 16, 64, 600)
    with torch.no_grad():
        expected = conv(x)
        for dtype in (torch.bfloat16, torch.float16):
            with torch.autocast('cpu', dtype=dtype):
                amp = conv(x)
            half = copy.deepcopy(conv).to(dtype)(x.to(dtype))
            assert amp.dtype == half.dtype == dtype
            bound = 0.01 if dtype == torch.bfloat16 else 0.002
            assert mean_relative_error(amp.float(), expected) < bound
            assert mean_relative_error(half.float(), expected) < bound


def training_step_gradients(model, images, dtype=None):
    model.zero_grad()
    with torch.autocast('cpu', dtype=dtype or torch.float32,
                        enabled=dtype is not None):
        outs = model(images)
        loss = sum(o.float().square().mean() for o in outs)
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.slow
def test_autocast_training_step_gradients_match_fp32():
    """Gradients of one training step (train mode: BN on batch statistics)
    under autocast against fp32, per parameter tensor, as the relative L2
    error ||g_amp - g_fp32|| / ||g_fp32||. Left out: DTM's conv biases,
    which feed a train-mode BatchNorm and so have an exactly-zero gradient
    (what is left is rounding noise). Many gradients are sums with heavy
    cancellation (norm and projection biases), where the summands' rounding
    shows against a small result, so gradients move more than features.
    Measured (S, 2x3x256x640): median over tensors / 90th percentile
    bf16 0.056 / 0.19, fp16 0.037 / 0.13; with DTM's positions in the low
    precision 0.25 / 0.86 and 0.12 / 0.35. The bounds sit ~1.6x above the
    first and well under the second. The test runs at 2x3x128x320 (a
    quarter of the cost; an autocast backward on a CPU is ~20x fp32's),
    where the same errors were measured 0.060 / 0.14 and 0.042 / 0.074
    (AMD EPYC).
    """
    torch.set_num_threads(2)
    model = trained_like_backbone('s', 2, seed=2).train()
    images = torch.randn(2, 3, 128, 320,
                         generator=torch.Generator().manual_seed(3))
    reference = training_step_gradients(model, images)
    compared = [name for name in reference
                if not name.endswith('downsample.dconv.bias')]
    for dtype, median, p90 in ((torch.bfloat16, 0.09, 0.3),
                               (torch.float16, 0.06, 0.2)):
        grads = training_step_gradients(model, images, dtype)
        errors = sorted(((grads[n] - reference[n]).norm() /
                         reference[n].norm().clamp_min(1e-30)).item()
                        for n in compared)
        assert errors[len(errors) // 2] <= median, (dtype, errors)
        assert errors[int(0.9 * len(errors))] <= p90, (dtype, errors)
