"""mmengine extensions: ``hooks`` (atomic checkpoints, exact resume, stop at
a non-finite loss), ``optim`` (bf16 autocast training on a CPU) and
``runner`` (``LITv2Runner``, which carries every guarantee to mmdet's and
mmseg's own tools through the configs' ``runner_type``).

Importing this package (or anything in it) registers the hooks
(``AtomicCheckpointHook``, ``RandomStateHook``, ``FiniteLossHook``,
``FiniteWeightsHook``, ``ResumeCheckHook``) in mmengine's ``HOOKS``, the
``atomic_local`` file backend
(:mod:`litv2_openmmlab.checkpoint.atomic_write`),
``CPUAutocastOptimWrapper`` in mmengine's ``OPTIM_WRAPPERS`` and
``LITv2Runner`` in mmengine's ``RUNNERS``.
"""
from . import hooks, optim, runner  # noqa: F401  (registers them)
