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
import fnmatch
import logging
import re
import types
from collections import OrderedDict
from typing import Iterable, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import _load_checkpoint

from .weights_only import CheckpointError

# mmengine's default: checkpoints of a DDP-wrapped model
DEFAULT_REVISE_KEYS = ((r'^module\.', ''), )
# keys of each kind named in the message
SHOWN_KEYS = 3


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's tensors do not fit the model (missing, unexpected or
    differently shaped keys); nothing should be evaluated with it."""

    def __init__(self, message: str, missing=(), unexpected=(), shapes=()):
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.shapes = list(shapes)  # (key, shape in file, shape in model)


def _matches(key: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def _first(keys: List[str], n: int = SHOWN_KEYS) -> str:
    shown = ', '.join(keys[:n])
    return shown + (', ...' if len(keys) > n else '')


def state_dict_of(checkpoint, filename) -> 'OrderedDict[str, torch.Tensor]':
    """The state dict of a checkpoint read as data (``{'state_dict': ...}``
    or bare), or :class:`CheckpointError` naming ``filename``."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f'checkpoint {filename!r} holds a {type(checkpoint).__name__}, '
            'not a state dict')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {filename!r}: its 'state_dict' "
                              f'is a {type(state).__name__}, not a dict')
    return state


def load_state_dict_strictly(
        model: torch.nn.Module,
        state_dict: dict,
        source: str = 'the state dict',
        allow_missing: Iterable[str] = (),
        revise_keys: Sequence[Tuple[str, str]] = DEFAULT_REVISE_KEYS,
        logger: Optional[str] = 'current') -> None:
    """Load ``state_dict`` into ``model`` (a model wrapper: into its
    ``module``); raise :class:`CheckpointMismatchError` naming ``source``
    unless every key matches in name and shape, ``allow_missing`` aside (see
    the module's docstring). The check is done before anything is copied:
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

    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [(k, tuple(state_dict[k].shape), tuple(own[k].shape))
              for k in own if k in state_dict
              and isinstance(state_dict[k], torch.Tensor)
              and state_dict[k].shape != own[k].shape]

    bad_missing = [k for k in missing if not _matches(k, allow)]
    bad_unexpected = [k for k in unexpected if not _matches(k, allow)]
    bad_shapes = [s for s in shapes if not _matches(s[0], allow)]
    if bad_missing or bad_unexpected or bad_shapes:
        parts = []
        if bad_missing:
            parts.append(f'{len(bad_missing)} missing from the file '
                         f'({_first(bad_missing)})')
        if bad_unexpected:
            parts.append(f'{len(bad_unexpected)} not in the model '
                         f'({_first(bad_unexpected)})')
        if bad_shapes:
            shown = ', '.join(f'{k}: file {tuple(f)} vs model {tuple(m)}'
                              for k, f, m in bad_shapes[:SHOWN_KEYS])
            more = ', ...' if len(bad_shapes) > SHOWN_KEYS else ''
            parts.append(f'{len(bad_shapes)} of another shape '
                         f'({shown}{more})')
        raise CheckpointMismatchError(
            f'{source} does not fit the model: '
            + '; '.join(parts) + '. Use the config the checkpoint was '
            'trained with; to leave keys out on purpose (another head, a '
            "backbone-only file) allow them: --allow-missing 'PATTERN' "
            '(fnmatch, e.g. bbox_head.*) or load_from_allow_missing=[...] '
            'in the config', bad_missing, bad_unexpected, bad_shapes)

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
