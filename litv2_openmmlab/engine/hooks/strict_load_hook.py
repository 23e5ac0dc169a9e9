"""Strict loading as a hook, so that it reaches every runner that reads the
config's hooks: ``LITv2Runner`` adds it, and the configs list it, for the
tools that build mmengine's own ``Runner`` (mmseg's ``tools/test.py``,
``Runner.from_cfg``).

mmengine's ``Runner.load_checkpoint`` (``load_from``, ``resume``) reads the
file, calls every hook's ``after_load_checkpoint`` with it, then loads its
``state_dict`` with ``strict=False``. :class:`StrictLoadHook` checks there,
before anything is copied, that the file fits the whole model
(:func:`~litv2_openmmlab.checkpoint.fit_state_dict`): a key missing from
the file, a key the model lacks or a tensor of another shape raises
``CheckpointMismatchError`` naming the file, unless the config's
``load_from_allow_missing`` (or the hook's ``allow_missing``) names it, for
``load_from`` only: a resumed run continues with its own checkpoint. The
checkpoint's ``state_dict`` is replaced by what fits (the file's layout
unwrapped: ``state_dict``, ``model``, bare), so mmengine loads exactly that.
"""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner.checkpoint import find_latest_checkpoint

from ...checkpoint.strict_load import (
    allowed_missing_keys,
    fit_state_dict,
    state_dict_of,
)


@HOOKS.register_module()
class StrictLoadHook(Hook):
    """Refuse a checkpoint that does not fit the whole model (see the
    module's docstring).

    Args:
        allow_missing (list[str]): fnmatch patterns of keys that a
            ``load_from`` file may lack, hold with another shape, or hold
            beyond the model, besides the config's
            ``load_from_allow_missing``. Default: none.
    """

    # first: the other hooks then see the file's state dict unwrapped
    priority = 'HIGHEST'

    def __init__(self, allow_missing=()):
        if isinstance(allow_missing, str):
            allow_missing = [allow_missing]
        self.allow_missing = tuple(allow_missing)

    def after_load_checkpoint(self, runner, checkpoint) -> None:
        # the runner's own record of what it loads (mmengine has no public
        # accessor): the load_from file, or the work dir's latest one
        resuming = bool(getattr(runner, '_resume', False))
        filename = (getattr(runner, '_load_from', None)
                    or find_latest_checkpoint(runner.work_dir)
                    or 'the checkpoint')
        allow = () if resuming else (
            self.allow_missing + allowed_missing_keys(runner.cfg))
        state = state_dict_of(checkpoint, filename)
        checkpoint['state_dict'] = fit_state_dict(
            runner.model, state, f'checkpoint {str(filename)!r}', allow)
