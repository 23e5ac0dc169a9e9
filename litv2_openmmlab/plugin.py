"""What the plugins ``mmdet_litv2`` and ``mmseg_litv2`` do on import, in one
place: :func:`install_plugin`."""
from .backbone import LITv2
from .checkpoint import use_safe_checkpoint_loader


def install_plugin(models) -> None:
    """Register ``LITv2`` in ``models`` (the task's ``MODELS`` registry);
    import :mod:`litv2_openmmlab.engine`, which registers the hooks in
    mmengine's ``HOOKS``, the ``atomic_local`` file backend,
    ``CPUAutocastOptimWrapper`` in mmengine's ``OPTIM_WRAPPERS`` and
    ``LITv2Runner`` in mmengine's ``RUNNERS``; and make mmengine's
    ``CheckpointLoader`` read every checkpoint (``init_cfg`` ``Pretrained``,
    ``load_from``, ``resume``, the inferencers), by every scheme, as data
    (process-wide; the one place where
    :func:`~litv2_openmmlab.checkpoint.use_safe_checkpoint_loader` is
    called)."""
    from . import engine  # noqa: F401  (registers in mmengine's registries)
    models.register_module(name='LITv2', module=LITv2)
    use_safe_checkpoint_loader()
