"""The reliability hooks that ``LITv2Runner`` adds to a config (strict
loading, atomic checkpoints, exact resume, stop at a non-finite loss or at
non-finite weights; the hooks are in :mod:`litv2_openmmlab.engine.hooks`)."""
from mmengine.config import Config

from .rank0_log import info_rank0, warn_rank0


def add_reliability_hooks(cfg: Config, finite_loss_check: bool = True):
    """Change the training config in place (each change is logged):

    * ``default_hooks.checkpoint`` of type ``CheckpointHook`` becomes
      ``AtomicCheckpointHook`` (same arguments; atomic writes);
    * ``custom_hooks`` gain ``StrictLoadHook`` (``load_from`` and
      ``resume`` load the whole model strictly), ``RandomStateHook`` (exact
      resume),
      ``ResumeCheckHook`` (an inexact resume said; a new learning rate
      taken on resume), ``FiniteWeightsHook`` (no loading of NaN weights)
      and, unless ``finite_loss_check`` is false, ``FiniteLossHook``, if
      not listed.
    """
    added = []
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if checkpoint is not None and checkpoint.get('type') == 'CheckpointHook':
        checkpoint['type'] = 'AtomicCheckpointHook'
        added.append('AtomicCheckpointHook (for CheckpointHook)')
    elif checkpoint is not None and \
            checkpoint.get('type') != 'AtomicCheckpointHook':
        warn_rank0('default_hooks.checkpoint is a '
                   f"{checkpoint.get('type')}: checkpoints are not written "
                   'atomically')
    hooks = cfg.get('custom_hooks') or []
    listed = {hook.get('type') for hook in hooks}
    wanted = ['StrictLoadHook', 'RandomStateHook', 'ResumeCheckHook',
              'FiniteWeightsHook'] + (
        ['FiniteLossHook'] if finite_loss_check else [])
    for name in wanted:
        if name not in listed:
            hooks.append(dict(type=name))
            added.append(name)
    cfg.custom_hooks = hooks
    if added:
        info_rank0('reliability hooks: ' + ', '.join(added))
    if not finite_loss_check:
        warn_rank0('--no-finite-loss-check: training goes on after a NaN/inf '
                   'loss')
