"""The hooks that ``tools/train.py`` adds to every training
(``litv2_openmmlab.engine.runner.add_reliability_hooks``), registered in
mmengine's ``HOOKS`` on import: ``AtomicCheckpointHook`` (with it the
``atomic_local`` file backend), ``RandomStateHook``, ``FiniteLossHook``,
``FiniteWeightsHook``, ``ResumeCheckHook``, ``StrictLoadHook``."""
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .finite_loss_hook import (
    FiniteLossHook,
    FiniteWeightsHook,
    NonFiniteLossError,
    NonFiniteWeightsError,
    non_finite_losses,
)
from .random_state_hook import RandomStateHook, get_rng_state, set_rng_state
from .resume_check_hook import ResumeCheckHook
from .strict_load_hook import StrictLoadHook

__all__ = [
    'AtomicCheckpointHook', 'FiniteLossHook', 'FiniteWeightsHook',
    'NonFiniteLossError', 'NonFiniteWeightsError', 'non_finite_losses',
    'RandomStateHook', 'ResumeCheckHook', 'StrictLoadHook', 'get_rng_state',
    'set_rng_state'
]
