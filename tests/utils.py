"""Shared helpers for the tests."""
import torch

from litv2 import LITV2_ARCHS, local_windows
from litv2.testing.reference import build_reference_backbone, randomize_
from litv2_openmmlab import LITv2


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Max abs difference relative to the max magnitude of ``expected``."""
    return ((actual - expected).abs().max() /
            expected.abs().max().clamp_min(1e-12)).item()


# The architecture of the small LITv2 of the tests (no window, no drop path:
# callers that keep a model's own defaults for those use this alone).
TINY_ARCH = dict(embed_dim=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8),
                 alpha=0.5)


def tiny_kwargs(**overrides):
    """A small LITv2 for tests where the architecture is not what is tested."""
    kwargs = dict(TINY_ARCH, local_ws=(0, 0, 2, 1), drop_path_rate=0.0)
    kwargs.update(overrides)
    return kwargs


def paired_models(arch: str = 's', window: int = 2, seed: int = 0,
                  **overrides):
    """The reference-algorithm oracle with random weights, and the project's
    LITv2 holding the very same weights (loaded strictly), both in eval."""
    cfg = dict(LITV2_ARCHS[arch], alpha=0.9, local_ws=local_windows(window))
    cfg.update(overrides)
    reference = randomize_(build_reference_backbone(**cfg), seed=seed).eval()
    model = LITv2(**cfg, drop_path_rate=0.0).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    return reference, model
