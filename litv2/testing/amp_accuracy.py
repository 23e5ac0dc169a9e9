"""How far a LITv2 backbone under autocast is from the same model in fp32.

Shared by the mixed-precision tests (tests/model/test_mixed_precision.py) and
the mixed-precision benchmark (benchmarks/bench_amp.py), so that the README's
error figures and the tested bounds are the same quantity.
"""
from typing import List

import torch

from ..archs import LITV2_ARCHS, local_windows
from ..backbone import LITv2Backbone
from .reference import randomize_


def trained_like_backbone(arch: str, window: int,
                          seed: int = 0) -> LITv2Backbone:
    """The paper's backbone of ``arch`` with window ``window``, holding
    weights as a trained model has them (``randomize_``: DTM offsets of a
    fraction of a pixel to about a pixel, BN running statistics away from
    0 / 1, norm scales around 1), in eval mode. A freshly built model has
    zero DTM offsets and identity BN statistics, under which the errors
    this measures would not show."""
    # the plain-PyTorch backbone: nothing of OpenMMLab is needed to measure
    model = LITv2Backbone(**LITV2_ARCHS[arch], alpha=0.9,
                          local_ws=local_windows(window), drop_path_rate=0.0)
    return randomize_(model, seed=seed).eval()


def mean_relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """``mean |actual - expected| / mean |expected|`` over the whole map.

    Element-wise ratios would be dominated by the entries of ``expected``
    that are near zero; this is the average error in units of the average
    magnitude."""
    actual, expected = actual.double(), expected.double()
    return ((actual - expected).abs().mean() /
            expected.abs().mean().clamp_min(1e-30)).item()


@torch.no_grad()
def autocast_stage_errors(model: torch.nn.Module, images: torch.Tensor,
                          dtype: torch.dtype,
                          reference=None) -> List[float]:
    """Per output stage, the mean relative error of ``model(images)`` under
    ``torch.autocast(images.device.type, dtype)`` against fp32 (``reference``
    if given: the fp32 outputs, to share them between dtypes)."""
    if reference is None:
        reference = model(images)
    with torch.autocast(images.device.type, dtype=dtype):
        outs = model(images)
    return [mean_relative_error(o.float(), r)
            for o, r in zip(outs, reference)]
