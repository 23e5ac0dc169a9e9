"""Run-time support shared by the tools and the two plugins: reading
checkpoints as data only (``weights_only=True`` with an allow-list), writing
them atomically, restoring random states on resume, stopping at a non-finite
loss, loading a whole model strictly (``strict_load.py``), and the task
detection / device adaptation of ``tools/train.py`` and
``tools/test.py``. Importing it registers the hooks ``AtomicCheckpointHook``,
``RandomStateHook`` and ``FiniteLossHook`` in mmengine's ``HOOKS`` and
``CPUAutocastOptimWrapper`` (bf16 training on a CPU) in ``OPTIM_WRAPPERS``."""
from .atomic_checkpoint import (
                                AtomicCheckpointHook,
                                AtomicLocalBackend,
                                write_atomically,
)
from .checkpoint_io import (
                                CheckpointError,
                                CorruptCheckpointError,
                                UnsafeCheckpointError,
                                load_from_file_weights_only,
                                use_safe_checkpoint_loader,
)
from .checkpoint_types import (
                                allow_mmengine_checkpoint_types,
                                mmengine_checkpoint_types,
)
from .cpu_amp import (
                                CPUAutocastOptimWrapper,
                                CPUBF16Error,
                                cpu_bf16_support,
                                require_cpu_bf16,
)
from .finite_loss import FiniteLossHook, NonFiniteLossError
from .rng_state import RandomStateHook, get_rng_state, set_rng_state
from .strict_load import (
                                CheckpointMismatchError,
                                load_checkpoint_strictly,
                                load_state_dict_strictly,
                                use_strict_loading,
)

__all__ = [
    'allow_mmengine_checkpoint_types', 'mmengine_checkpoint_types',
    'CheckpointError', 'CorruptCheckpointError', 'UnsafeCheckpointError',
    'load_from_file_weights_only', 'use_safe_checkpoint_loader',
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'write_atomically',
    'RandomStateHook', 'get_rng_state', 'set_rng_state', 'FiniteLossHook',
    'NonFiniteLossError', 'CPUAutocastOptimWrapper', 'CPUBF16Error',
    'cpu_bf16_support', 'require_cpu_bf16', 'CheckpointMismatchError',
    'load_checkpoint_strictly', 'load_state_dict_strictly',
    'use_strict_loading'
]
