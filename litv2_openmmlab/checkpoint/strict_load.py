"""Loading a whole model from a checkpoint strictly: every tensor of the model
comes from the file, every tensor of the file goes into the model, with the
same shape, or nothing is evaluated.

mmengine's ``Runner.load_checkpoint`` (``load_from``, ``--resume``,
``tools/test.py``) loads with ``strict=False``: a key that the file lacks
keeps its random initialisation, a key of another shape is skipped, and the
only trace is a warning inside a long log. A config paired with the wrong
checkpoint then gives a metric that means nothing.

:func:`load_checkpoint_strictly` is the one function through which the tools
(``tools/test.py``, ``tools/fps.py``, ``load_from`` and ``--resume`` of
``tools/train.py``, ``tools/infer.py``) load a whole model. A missing,
unexpected or differently shaped key raises :class:`CheckpointMismatchError`,
whose one-line message names the file, the first keys of each kind and their
counts. A partial load is deliberate only: ``allow_missing`` lists the key
patterns that need not match (``fnmatch`` globs such as ``'bbox_head.*'``):

* a model key matching a pattern may be absent from the file or held there
  with another shape: it keeps its initial value;
* a file key matching a pattern that the model does not have is skipped.

Every key left out that way is counted in one log line.
:func:`use_strict_loading` makes a ``Runner`` load that way.
"""
import logging
import re
import types
from collections import OrderedDict
from typing import Iterable, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import _load_checkpoint

from litv2.checkpoint import (
    CheckpointMismatchError,
    _first,
    _matches,
    check_state_dict_fits,
    unwrap_state_dict,
)

from .weights_only import use_safe_checkpoint_loader

# mmengine's default: checkpoints of a DDP-wrapped model
DEFAULT_REVISE_KEYS = ((r'^module\.', ''), )

__all__ = [
    'CheckpointMismatchError', 'DEFAULT_REVISE_KEYS', 'state_dict_of',
    'load_state_dict_strictly', 'load_checkpoint_strictly',
    'use_strict_loading', 'allowed_missing_keys'
]

# What to do when a whole model's checkpoint does not fit
_ADVICE = ('Use the config the checkpoint was trained with; to leave keys '
           'out on purpose (another head, a backbone-only file) allow them: '
           "--allow-missing 'PATTERN' (fnmatch, e.g. bbox_head.*) or "
           'load_from_allow_missing=[...] in the config')


def state_dict_of(checkpoint, filename) -> 'OrderedDict[str, torch.Tensor]':
    """The state dict of a checkpoint read as data, in any layout of
    :func:`litv2.checkpoint.unwrap_state_dict` (``state_dict``, ``model``,
    bare), or :class:`~litv2.checkpoint.CheckpointError` naming
    ``filename``."""
    return unwrap_state_dict(checkpoint, f'checkpoint {str(filename)!r}')


def load_state_dict_strictly(
        model: torch.nn.Module,
        state_dict: dict,
        source: str = 'the state dict',
        allow_missing: Iterable[str] = (),
        revise_keys: Sequence[Tuple[str, str]] = DEFAULT_REVISE_KEYS,
        logger: Optional[str] = 'current',
        advice: Optional[str] = None) -> None:
    """Load ``state_dict`` into ``model`` (a model wrapper: into its
    ``module``); raise :class:`CheckpointMismatchError` naming ``source``
    unless every key matches in name and shape, ``allow_missing`` aside (see
    the module's docstring); ``advice`` replaces the message's advice (a
    tool with other options). The check is done before anything is copied:
    on error the model is unchanged."""
    if is_model_wrapper(model):
        model = model.module
    allow = tuple(allow_missing or ())
    metadata = getattr(state_dict, '_metadata', None)
    for pattern, replacement in revise_keys:
        state_dict = OrderedDict(
            (re.sub(pattern, replacement, k), v)
            for k, v in state_dict.items())
    own = model.state_dict()
    missing, unexpected, shapes = check_state_dict_fits(
        state_dict, own, source,
        f'the whole {type(model).__name__} (its {len(own)} keys)',
        advice if advice is not None else _ADVICE, allow)

    skipped = set(unexpected) | {k for k, _, _ in shapes}
    to_load = OrderedDict(
        (k, v) for k, v in state_dict.items() if k not in skipped)
    if metadata is not None:
        to_load._metadata = metadata
    result = model.load_state_dict(to_load, strict=False)
    # a module's own loading hooks could still disagree with the key names
    left = [k for k in result.missing_keys
            if k not in {s[0] for s in shapes} and not _matches(k, allow)]
    if left or result.unexpected_keys:
        raise CheckpointMismatchError(
            f'{source}: the model refused '
            f'{len(result.unexpected_keys)} key(s) '
            f'({_first(list(result.unexpected_keys))}) and left '
            f'{len(left)} unset ({_first(left)})', left,
            result.unexpected_keys)
    if missing or unexpected or shapes:
        print_log(
            f'{source} loaded partially, as allowed by '
            f'{list(allow)}: {len(missing)} model key(s) not in the file '
            f'({_first(missing)}) and {len(shapes)} of another shape '
            f'({_first([s[0] for s in shapes])}) keep their initial values; '
            f'{len(unexpected)} file key(s) skipped '
            f'({_first(unexpected)})',
            logger=logger, level=logging.WARNING)


def load_checkpoint_strictly(
        model: torch.nn.Module,
        filename: str,
        allow_missing: Iterable[str] = (),
        map_location='cpu',
        revise_keys: Sequence[Tuple[str, str]] = DEFAULT_REVISE_KEYS,
        logger: Optional[str] = 'current') -> dict:
    """Read ``filename`` (through mmengine's ``CheckpointLoader``: local
    files and URLs with ``weights_only=True``, see ``weights_only.py``) and
    load its ``state_dict`` (or the file itself when it is a bare state dict)
    into ``model`` with :func:`load_state_dict_strictly`. Returns the whole
    checkpoint (``meta`` etc.). Raises :class:`CheckpointMismatchError`
    (one line: file, counts, first keys) on any mismatch not covered by
    ``allow_missing``; ``FileNotFoundError`` / other
    :class:`~.weights_only.CheckpointError` for a file that cannot be read.
    """
    use_safe_checkpoint_loader()
    filename = str(filename)  # mmengine matches its schemes on strings
    checkpoint = _load_checkpoint(filename, map_location=map_location)
    load_state_dict_strictly(model, state_dict_of(checkpoint, filename),
                             f'checkpoint {str(filename)!r}', allow_missing,
                             revise_keys, logger)
    return checkpoint


def _strict_runner_load(self, filename, map_location='cpu', strict=True,
                        revise_keys=DEFAULT_REVISE_KEYS):
    """``Runner.load_checkpoint`` (``load_from``, ``resume``) with the checks
    of :func:`load_state_dict_strictly`; ``strict`` is ignored. Resuming
    allows no missing key: the run is continued with its own checkpoint."""
    use_safe_checkpoint_loader()
    checkpoint = _load_checkpoint(filename, map_location=map_location)
    self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
    allow = () if self._resume else self._litv2_allow_missing
    load_state_dict_strictly(self.model, state_dict_of(checkpoint, filename),
                             f'checkpoint {str(filename)!r}', allow,
                             revise_keys)
    self._has_loaded = True
    self.logger.info(f'Load checkpoint from {filename}')
    return checkpoint


def use_strict_loading(runner, allow_missing: Iterable[str] = ()):
    """Make ``runner`` (an mmengine ``Runner`` of any class) load
    ``load_from`` and ``--resume`` checkpoints strictly; ``allow_missing``
    applies to ``load_from`` only. Returns the runner."""
    runner._litv2_allow_missing = tuple(allow_missing or ())
    runner.load_checkpoint = types.MethodType(_strict_runner_load, runner)
    return runner


def allowed_missing_keys(cfg, cli_patterns: Optional[Sequence[str]] = None):
    """The patterns of ``cfg.load_from_allow_missing`` (a list of fnmatch
    globs, or one string) and of the command line's ``--allow-missing``."""
    patterns = cfg.get('load_from_allow_missing', None) or []
    if isinstance(patterns, str):
        patterns = [patterns]
    return tuple(patterns) + tuple(cli_patterns or ())
