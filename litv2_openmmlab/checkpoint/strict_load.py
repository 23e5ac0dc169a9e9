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
``StrictLoadHook`` makes a runner (``load_from``, ``resume``) load that
way, with :func:`fit_state_dict`.
"""
import logging
import re
from collections import OrderedDict
from typing import Iterable, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from litv2.checkpoint import (
    CheckpointMismatchError,
    _first,
    _matches,
    check_state_dict_fits,
    unwrap_state_dict,
)

from .weights_only import load_checkpoint_safely

# mmengine's default: checkpoints of a DDP-wrapped model
DEFAULT_REVISE_KEYS = ((r'^module\.', ''), )

__all__ = [
    'CheckpointMismatchError', 'DEFAULT_REVISE_KEYS', 'state_dict_of',
    'fit_state_dict',
    'load_state_dict_strictly', 'load_checkpoint_strictly',
    'allowed_missing_keys'
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


def fit_state_dict(
        model: torch.nn.Module,
        state_dict: dict,
        source: str = 'the state dict',
        allow_missing: Iterable[str] = (),
        revise_keys: Sequence[Tuple[str, str]] = DEFAULT_REVISE_KEYS,
        logger: Optional[str] = 'current',
        advice: Optional[str] = None) -> 'OrderedDict[str, torch.Tensor]':
    """What of ``state_dict`` to load into ``model`` (a model wrapper: its
    ``module``), keys revised by ``revise_keys``: everything, or
    :class:`CheckpointMismatchError` naming ``source`` unless every key
    matches in name and shape, ``allow_missing`` aside (see the module's
    docstring: the allowed file keys the model lacks or holds with another
    shape are left out, and the partial load is logged). ``advice``
    replaces the message's advice (a tool with other options)."""
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
    if missing or unexpected or shapes:
        print_log(
            f'{source} loaded partially, as allowed by '
            f'{list(allow)}: {len(missing)} model key(s) not in the file '
            f'({_first(missing)}) and {len(shapes)} of another shape '
            f'({_first([s[0] for s in shapes])}) keep their initial values; '
            f'{len(unexpected)} file key(s) skipped '
            f'({_first(unexpected)})',
            logger=logger, level=logging.WARNING)
    return to_load


def load_state_dict_strictly(
        model: torch.nn.Module,
        state_dict: dict,
        source: str = 'the state dict',
        allow_missing: Iterable[str] = (),
        revise_keys: Sequence[Tuple[str, str]] = DEFAULT_REVISE_KEYS,
        logger: Optional[str] = 'current',
        advice: Optional[str] = None) -> None:
    """Load ``state_dict`` into ``model`` (a model wrapper: into its
    ``module``) after :func:`fit_state_dict`'s check: the check is done
    before anything is copied, so on error the model is unchanged."""
    if is_model_wrapper(model):
        model = model.module
    allow = tuple(allow_missing or ())
    to_load = fit_state_dict(model, state_dict, source, allow, revise_keys,
                             logger, advice)
    result = model.load_state_dict(to_load, strict=False)
    # a module's own loading hooks could still disagree with the key names
    left = [k for k in result.missing_keys if not _matches(k, allow)]
    if left or result.unexpected_keys:
        raise CheckpointMismatchError(
            f'{source}: the model refused '
            f'{len(result.unexpected_keys)} key(s) '
            f'({_first(list(result.unexpected_keys))}) and left '
            f'{len(left)} unset ({_first(left)})', left,
            result.unexpected_keys)


def load_checkpoint_strictly(
        model: torch.nn.Module,
        filename: str,
        allow_missing: Iterable[str] = (),
        map_location='cpu',
        revise_keys: Sequence[Tuple[str, str]] = DEFAULT_REVISE_KEYS,
        logger: Optional[str] = 'current') -> dict:
    """Read ``filename`` (a local file, a URL or any scheme of mmengine, as
    data: :func:`~.weights_only.load_checkpoint_safely`) and
    load its ``state_dict`` (or the file itself when it is a bare state dict)
    into ``model`` with :func:`load_state_dict_strictly`. Returns the whole
    checkpoint (``meta`` etc.). Raises :class:`CheckpointMismatchError`
    (one line: file, counts, first keys) on any mismatch not covered by
    ``allow_missing``; ``FileNotFoundError`` / other
    :class:`~.weights_only.CheckpointError` for a file that cannot be read.
    """
    filename = str(filename)  # schemes are matched on strings
    checkpoint = load_checkpoint_safely(filename, map_location=map_location)
    load_state_dict_strictly(model, state_dict_of(checkpoint, filename),
                             f'checkpoint {str(filename)!r}', allow_missing,
                             revise_keys, logger)
    return checkpoint


def allowed_missing_keys(cfg, cli_patterns: Optional[Sequence[str]] = None):
    """The patterns of ``cfg.load_from_allow_missing`` (a list of fnmatch
    globs, or one string) and of the command line's ``--allow-missing``."""
    patterns = cfg.get('load_from_allow_missing', None) or []
    if isinstance(patterns, str):
        patterns = [patterns]
    return tuple(patterns) + tuple(cli_patterns or ())
