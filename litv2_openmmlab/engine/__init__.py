"""mmengine extensions: ``hooks`` (atomic checkpoints, exact resume, stop at
a non-finite loss), ``optim`` (bf16 autocast training on a CPU) and
``runner`` (what ``tools/train.py`` / ``tools/test.py`` need around
mmengine's ``Runner``).

Importing this package (or anything in it) imports ``hooks`` and ``optim``,
which registers ``AtomicCheckpointHook``, ``RandomStateHook`` and
``FiniteLossHook`` in mmengine's ``HOOKS``, the ``atomic_local`` file backend
(:mod:`litv2_openmmlab.checkpoint.atomic_write`) and
``CPUAutocastOptimWrapper`` in mmengine's ``OPTIM_WRAPPERS``. ``runner`` is
imported only when asked for.
"""
from . import hooks, optim  # noqa: F401  (registers them in mmengine)
