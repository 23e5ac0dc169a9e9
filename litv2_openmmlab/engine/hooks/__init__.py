"""The hooks that ``tools/train.py`` adds to every training
(``litv2_openmmlab.engine.runner.add_reliability_hooks``), registered in
mmengine's ``HOOKS`` on import: ``AtomicCheckpointHook`` (with it the
``atomic_local`` file backend), ``RandomStateHook``, ``FiniteLossHook``."""
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .finite_loss_hook import (
    FiniteLossHook,
    NonFiniteLossError,
    non_finite_losses,
)
from .random_state_hook import RandomStateHook, get_rng_state, set_rng_state

__all__ = [
    'AtomicCheckpointHook', 'FiniteLossHook', 'NonFiniteLossError',
    'non_finite_losses', 'RandomStateHook', 'get_rng_state', 'set_rng_state'
]
