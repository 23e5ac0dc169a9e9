"""Checkpoints as data: the one reader of checkpoint files, the one
unwrapping of their layouts and the one check that a state dict fits a model
(pure PyTorch; numpy and safetensors only when a file needs them).

Reading (:func:`read_checkpoint_file`). A ``.pth`` file is a pickle, which
may name any function to call. It is read here by a restricted unpickler
that resolves only what plain data needs and refuses every other name
before anything is called:

* tensors, storages, dtypes, ``OrderedDict``, ``set`` ... - torch's own
  ``weights_only`` list;
* numpy arrays, dtypes and scalars, under numpy 1.x (``numpy.core``) and
  2.x (``numpy._core``) names;
* the config objects that training scripts save beside the weights, mapped
  to inert stand-ins and returned as plain dicts (their classes are never
  called): yacs / fvcore / detectron2 ``CfgNode`` (a dict subclass, which
  torch's ``weights_only`` refuses with "Can only SETITEMS for dict"),
  ``argparse.Namespace``, ``types.SimpleNamespace``, mmcv / mmengine
  ``ConfigDict`` (see :data:`INERT_CONFIG_CLASSES`);
* mmengine's ``HistoryBuffer`` of runner checkpoints: an inert record here;
  the OpenMMLab adapter passes the real class (``extra_globals``).

``BUILD`` (restoring an object's attributes) is refused on classes and
functions, so a pickle cannot change what the allowed names do. A file in
safetensors format is read by safetensors (data only by design).

Layouts (:func:`unwrap_state_dict`): ``{'state_dict': ...}`` (mmengine,
mmdet 2.x, mmseg 0.x, timm's ``train.py``), ``{'model': ...}`` (the
reference's and DeiT's training files, a whole model saved under
``model``), ``{'module': ...}``, or a bare state dict; DataParallel's
``module.`` prefix removed.

Fit (:func:`check_state_dict_fits`): the one check used by the detection
backbone's ``Pretrained``, timm's loader and the tools' strict loading; a
file of the wrong kind is named as what it is (:func:`checkpoint_kind`).
"""
import _compat_pickle
import codecs
import collections
import fnmatch
import os
import os.path as osp
import pickle
import re
import types
from typing import (
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

import torch


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used; the message names the file."""


class UnsafeCheckpointError(CheckpointError):
    """The file's pickle would call something that is not plain data."""


class CorruptCheckpointError(CheckpointError):
    """The file is truncated, empty or not a checkpoint."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No file at the checkpoint's path (also a ``FileNotFoundError``)."""


class CheckpointIsADirectoryError(CheckpointError, IsADirectoryError):
    """The checkpoint's path is a directory (also an
    ``IsADirectoryError``)."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's tensors do not fit the model (missing, unexpected or
    differently shaped keys); nothing should be evaluated with it."""

    def __init__(self, message: str, missing=(), unexpected=(), shapes=()):
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.shapes = list(shapes)  # (key, shape in file, shape in model)


# ---------------------------------------------------------------- reading

class InertConfig(dict):
    """Stand-in for a dict-like config class (yacs ``CfgNode`` ...): takes
    the items, drops the class's own attribute state (flags such as
    ``__immutable__``)."""

    def __setstate__(self, state):
        pass


class InertRecord:
    """Stand-in for an object of plain attributes (``argparse.Namespace``
    ...): keeps the attributes, does nothing else."""

    def __init__(self, *args, **kwargs):
        self.__dict__.update(kwargs)

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)


# Config classes that training scripts pickle beside the weights; read as
# plain dicts, never constructed.
INERT_CONFIG_CLASSES = {
    'yacs.config.CfgNode': InertConfig,
    'fvcore.common.config.CfgNode': InertConfig,
    'detectron2.config.config.CfgNode': InertConfig,
    'mmcv.utils.config.ConfigDict': InertConfig,
    'mmengine.config.config.ConfigDict': InertConfig,
    'addict.addict.Dict': InertConfig,
    'argparse.Namespace': InertRecord,
    'types.SimpleNamespace': InertRecord,
}

_HISTORY_BUFFER = 'mmengine.logging.history_buffer.HistoryBuffer'
_HISTORY_METHODS = ('min', 'max', 'current', 'mean')


class _InertHistoryBuffer(InertRecord):
    """mmengine's ``HistoryBuffer`` of a runner checkpoint's message hub,
    when no real class is given: its values, nothing else."""


def _inert_getattr(owner, name):
    """``builtins.getattr`` as a runner checkpoint uses it (a
    HistoryBuffer's statistics method); anything else is refused."""
    if owner is _InertHistoryBuffer and name in _HISTORY_METHODS:
        return name
    raise _Refused(f'builtins.getattr({getattr(owner, "__name__", owner)}, '
                   f'{name!r})')


def _latin1_encode(text, encoding='latin1'):
    """``_codecs.encode`` as pickle protocol 2 uses it for ``bytes``."""
    if encoding not in ('latin1', 'latin-1') or not isinstance(text, str):
        raise _Refused(f'_codecs.encode(..., {encoding!r})')
    return codecs.encode(text, 'latin1')


class _Refused(pickle.UnpicklingError):
    """A name or operation outside what plain data needs."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


def _torch_globals() -> Dict[str, object]:
    """torch's own list of what tensors need (``weights_only``)."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals
        found = dict(_get_allowed_globals())
    except (ImportError, AttributeError):  # other torch: the essentials
        found = {f'torch._utils.{n}': getattr(torch._utils, n)
                 for n in dir(torch._utils) if n.startswith('_rebuild_')}
        found.update({
            'torch._tensor._rebuild_from_type_v2':
            torch._tensor._rebuild_from_type_v2,
            'torch.nn.parameter.Parameter': torch.nn.Parameter,
            'torch.Size': torch.Size, 'torch.device': torch.device,
            'torch.serialization._get_layout': torch.serialization._get_layout,
            'collections.OrderedDict': collections.OrderedDict,
            'builtins.set': set,
        })
        found.update({f'torch.{n}': getattr(torch, n) for n in dir(torch)
                      if isinstance(getattr(torch, n), torch.dtype)})
    # only latin1 text to bytes, not any codec
    found['_codecs.encode'] = _latin1_encode
    found.setdefault('builtins.frozenset', frozenset)
    found.setdefault('collections.OrderedDict', collections.OrderedDict)
    return found


def _numpy_global(module: str, name: str):
    """A numpy name of numpy 1.x or 2.x (``numpy.core`` / ``numpy._core``)
    resolved in the installed numpy, if it is plain data; else None."""
    if module != 'numpy' and not module.startswith('numpy.'):
        return None
    import numpy as np
    inner = {'_reconstruct', 'scalar', '_frombuffer'}
    if module in ('numpy.core.multiarray', 'numpy._core.multiarray',
                  'numpy.core.numeric', 'numpy._core.numeric') \
            and name in inner:
        core = getattr(np, '_core', None) or np.core
        for part in ('multiarray', 'numeric'):
            found = getattr(getattr(core, part), name, None)
            if found is not None:
                return found
        return None
    if module == 'numpy' and name in ('ndarray', 'dtype'):
        return getattr(np, name)
    if module == 'numpy.dtypes':  # numpy 2 pickles dtypes by class
        found = getattr(getattr(np, 'dtypes', None), name, None)
        if isinstance(found, type) and issubclass(found, np.dtype):
            return found
    return None


def _restricted_pickle_module(extra_globals: Mapping[str, object]):
    """A stand-in for the ``pickle`` module whose unpickler resolves only
    the allowed names (for ``torch.load(pickle_module=...)``)."""
    allowed = _torch_globals()
    allowed.update(INERT_CONFIG_CLASSES)
    allowed[_HISTORY_BUFFER] = _InertHistoryBuffer
    allowed['builtins.getattr'] = _inert_getattr
    allowed.update(extra_globals)

    class RestrictedUnpickler(pickle._Unpickler):
        # The pure-Python unpickler: its opcodes can be guarded (BUILD);
        # the pickles of checkpoints are small, the tensors lie beside them.
        dispatch = dict(pickle._Unpickler.dispatch)

        def find_class(self, module, name):
            if self.proto < 3 and self.fix_imports:  # Python 2 names
                if (module, name) in _compat_pickle.NAME_MAPPING:
                    module, name = _compat_pickle.NAME_MAPPING[module, name]
                elif module in _compat_pickle.IMPORT_MAPPING:
                    module = _compat_pickle.IMPORT_MAPPING[module]
            key = f'{module}.{name}'
            found = allowed.get(key)
            if found is None:
                found = _numpy_global(module, name)
            if found is None:
                raise _Refused(key)
            return found

        def load_build(self):
            target = self.stack[-2]
            if callable(target) or isinstance(target, types.ModuleType):
                # Setting attributes of a class or function would change
                # what the allowed names do.
                raise _Refused('BUILD on '
                               f'{getattr(target, "__qualname__", target)}')
            pickle._Unpickler.load_build(self)

        dispatch[pickle.BUILD[0]] = load_build

    module = types.ModuleType('litv2_restricted_pickle')
    module.Unpickler = RestrictedUnpickler
    module.UnpicklingError = pickle.UnpicklingError

    def load(file, **kwargs):
        return RestrictedUnpickler(file, **kwargs).load()

    module.load = load
    return module


def _plain(obj, memo=None):
    """The inert stand-ins replaced by plain dicts, inside plain
    containers (tensors and arrays are left as they are)."""
    memo = {} if memo is None else memo
    if id(obj) in memo:
        return memo[id(obj)]
    if isinstance(obj, _InertHistoryBuffer):
        return obj
    if isinstance(obj, InertRecord):
        out = memo[id(obj)] = {}
        out.update((k, _plain(v, memo)) for k, v in vars(obj).items())
        return out
    if isinstance(obj, InertConfig) or type(obj) is dict:
        out = memo[id(obj)] = {}
        out.update((k, _plain(v, memo)) for k, v in obj.items())
        return out
    if isinstance(obj, collections.OrderedDict):
        # state dicts: keep the class and the _metadata of load_state_dict
        for k, v in obj.items():
            if isinstance(v, (dict, list, tuple, InertRecord)):
                obj[k] = _plain(v, memo)
        return obj
    if type(obj) is list:
        return [_plain(v, memo) for v in obj]
    if type(obj) is tuple:
        return tuple(_plain(v, memo) for v in obj)
    return obj


def _is_safetensors(head: bytes) -> bool:
    """safetensors: an 8-byte little-endian header length, then JSON."""
    if len(head) < 9 or head[8:9] != b'{':
        return False
    return 2 <= int.from_bytes(head[:8], 'little') < 100_000_000


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def check_checkpoint_path(path: str, name: Optional[str] = None) -> None:
    """Raise :class:`CheckpointIsADirectoryError` /
    :class:`CheckpointNotFoundError` (one line naming it; also an
    ``IsADirectoryError`` / ``FileNotFoundError``, and a
    :class:`CheckpointError` that every tool prints in one line) unless
    ``path`` is a file; URLs (``scheme://``) pass."""
    name = path if name is None else name
    if '://' in str(path):
        return
    path = osp.expanduser(str(path))
    if osp.isdir(path):
        raise CheckpointIsADirectoryError(
            f'checkpoint {name!r} is a directory, not a checkpoint file')
    if not osp.isfile(path):
        raise CheckpointNotFoundError(f'checkpoint {name!r} not found')


def read_checkpoint_file(source,
                         map_location='cpu',
                         extra_globals: Optional[Mapping[str, object]] = None,
                         name: Optional[str] = None):
    """Read a checkpoint (a path, or a binary file object with ``name``
    naming it) as data only (see the module's docstring).

    Raises ``FileNotFoundError`` / ``IsADirectoryError``,
    :class:`UnsafeCheckpointError` naming the file and the global it asks
    for (nothing of the file has run), or :class:`CorruptCheckpointError`
    for a truncated, empty or foreign file; each in one line naming the
    file. ``extra_globals`` maps further ``'module.name'`` to objects that
    the caller vouches for (the adapter's mmengine types).
    """
    if isinstance(source, (str, os.PathLike)):
        name = name or os.fspath(source)
        path = osp.expanduser(os.fspath(source))
        check_checkpoint_path(path, name)
        with open(path, 'rb') as f:
            head = f.read(9)
        source = path
    else:
        name = name or getattr(source, 'name', '<file object>')
        position = source.tell()
        head = source.read(9)
        source.seek(position)
    try:
        if _is_safetensors(head):
            return _read_safetensors(source, name, map_location)
        module = _restricted_pickle_module(extra_globals or {})
        checkpoint = torch.load(source, map_location=map_location,
                                pickle_module=module, weights_only=False)
    except _Refused as err:
        raise UnsafeCheckpointError(
            f'checkpoint {name!r} refused: its pickle asks for {err.what}, '
            'which is not plain data (tensors, containers, numpy arrays, '
            'the config and mmengine types listed in litv2/checkpoint.py); '
            'nothing in it was run. Only if you trust its source, re-save '
            'its tensors with torch.save(state_dict, ...) in a separate '
            'process.') from None
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001  torch raises many kinds
        raise CorruptCheckpointError(
            f'checkpoint {name!r} is truncated or not a checkpoint '
            f'({type(err).__name__}: {_first_line(err)})') from None
    return _plain(checkpoint)


def _read_safetensors(source, name: str, map_location):
    try:
        from safetensors.torch import load, load_file
    except ImportError:
        raise CheckpointError(
            f'checkpoint {name!r} is a safetensors file; install '
            'safetensors to read it') from None
    device = map_location if isinstance(map_location, str) else 'cpu'
    if isinstance(source, str):
        return load_file(source, device=device)
    state = load(source.read())
    return {k: v.to(device) for k, v in state.items()}


# ---------------------------------------------------------------- layouts

# Where a checkpoint keeps its weights, in the order they are looked for.
STATE_DICT_CONTAINERS = ('state_dict', 'model', 'module')

# Keys of the ImageNet classifier that have no counterpart in the backbone.
_CLASSIFIER_ONLY = re.compile(r'^(head|norm)\.')

# What training state beside no weights looks like
_OPTIMIZER_KEYS = ('optimizer', 'optim_wrapper', 'param_groups', 'state',
                   'lr_scheduler', 'param_schedulers')


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and any(
        isinstance(v, torch.Tensor) for v in obj.values())


def unwrap_state_dict(checkpoint, source: str = 'the checkpoint'
                      ) -> Dict[str, torch.Tensor]:
    """The state dict of any of the layouts (see the module's docstring):
    the first of :data:`STATE_DICT_CONTAINERS` that holds tensors, else
    ``checkpoint`` itself; DataParallel's ``module.`` prefixes removed.
    :class:`CheckpointError` naming ``source`` if there are no weights (an
    optimizer-only file ...)."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f'{source} holds a {type(checkpoint).__name__}, not a state '
            'dict')
    state = checkpoint
    for container in STATE_DICT_CONTAINERS:
        inner = checkpoint.get(container)
        if isinstance(inner, dict) and (_is_state_dict(inner) or not any(
                isinstance(v, torch.Tensor) for v in checkpoint.values())):
            state = inner
            break
    if not _is_state_dict(state):
        kind = checkpoint_kind(checkpoint)
        raise CheckpointError(
            f'{source} holds no weights ({kind}; top-level keys '
            f'{_first(sorted(map(str, checkpoint)), 6)}). Give the '
            'checkpoint of the model itself (mmengine: iter_N.pth / '
            'epoch_N.pth; the reference: the file with a "model" entry)')
    metadata = getattr(state, '_metadata', None)
    state = collections.OrderedDict(
        (k[len('module.'):] if str(k).startswith('module.') else k, v)
        for k, v in state.items())
    if metadata is not None:
        state._metadata = metadata
    return state


def checkpoint_kind(state: Mapping) -> str:
    """What a state dict (or a checkpoint without weights) is, in words:
    'an ImageNet classifier', 'a LITv2 backbone', 'a detector', 'a
    segmentor', 'optimizer state only', ..."""
    if not isinstance(state, Mapping):
        return f'a {type(state).__name__}'
    keys = [k for k in state if isinstance(k, str)]
    if not any(isinstance(v, torch.Tensor) for v in state.values()):
        if any(k in _OPTIMIZER_KEYS for k in keys):
            return 'optimizer / training state only, no model weights'
        return 'no tensors'
    roots = {k.split('.')[0] for k in keys}
    if roots & {'bbox_head', 'rpn_head', 'roi_head', 'mask_head'}:
        return 'a detector (keys under ' + ', '.join(
            sorted(roots)[:5]) + ')'
    if roots & {'decode_head', 'auxiliary_head'}:
        return 'a segmentor (keys under ' + ', '.join(
            sorted(roots)[:5]) + ')'
    if 'backbone' in roots:
        return 'a model with a backbone (keys under ' + ', '.join(
            sorted(roots)[:5]) + ')'
    if {'patch_embed', 'layers'} <= roots:
        if 'head' in roots:
            return 'an ImageNet classifier (patch_embed, layers, norm, head)'
        return 'a backbone (patch_embed, layers, ...)'
    if 'head' in roots or 'fc' in roots or 'classifier' in roots:
        return 'a classifier of another architecture (keys under ' + \
            ', '.join(sorted(roots)[:5]) + ')'
    return 'a model with keys under ' + ', '.join(sorted(roots)[:5])


def extract_backbone_state_dict(
        checkpoint: dict,
        prefix: Optional[str] = None,
        source: str = 'the checkpoint'
) -> Tuple[Dict[str, torch.Tensor], list]:
    """Return ``(backbone_state_dict, dropped_keys)`` from any of the layouts.

    ``prefix`` selects keys under it (e.g. ``'backbone.'``); by default the
    ``backbone.`` prefix is detected. Classifier-only keys are dropped and
    returned so that callers can report them.
    """
    state = unwrap_state_dict(checkpoint, source)
    if prefix is None and any(k.startswith('backbone.') for k in state):
        prefix = 'backbone.'
    if prefix:
        selected = {k[len(prefix):]: v for k, v in state.items()
                    if k.startswith(prefix)}
        if not selected:
            raise CheckpointMismatchError(
                f'{source} has no key under prefix {prefix!r}: it is '
                f'{checkpoint_kind(state)}. Give the prefix its keys have '
                "(init_cfg's prefix) or none")
        state = selected
    dropped = sorted(k for k in state if _CLASSIFIER_ONLY.match(k))
    return {k: v for k, v in state.items() if k not in dropped}, dropped


# -------------------------------------------------------------------- fit

# keys of each kind named in a message
SHOWN_KEYS = 3


def _first(keys: Sequence[str], n: int = SHOWN_KEYS) -> str:
    shown = ', '.join(keys[:n])
    return shown + (', ...' if len(keys) > n else '')


def _matches(key: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def check_state_dict_fits(
        state: Mapping[str, torch.Tensor],
        own: Mapping[str, torch.Tensor],
        source: str,
        expected: str,
        advice: str,
        allow: Iterable[str] = (),
        exempt: Callable[[str], bool] = lambda key: False,
) -> Tuple[List[str], List[str], List[tuple]]:
    """Compare ``state`` (a file's) with ``own`` (a model's state dict).

    Keys matching an ``allow`` pattern (fnmatch) or ``exempt`` may be
    missing, unexpected or of another shape. Anything else raises
    :class:`CheckpointMismatchError` in one line: ``source``, what the file
    is (:func:`checkpoint_kind`) when it is not ``expected`` (what the
    model wants, in words), the counts and first keys of each kind, and
    ``advice``. Returns ``(missing, unexpected, shapes)`` including the
    allowed ones."""
    allow = tuple(allow or ())
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [(k, tuple(state[k].shape), tuple(own[k].shape))
              for k in own if k in state
              and isinstance(state[k], torch.Tensor)
              and tuple(state[k].shape) != tuple(own[k].shape)]

    def bad(key):
        return not (_matches(key, allow) or exempt(key))

    bad_missing = [k for k in missing if bad(k)]
    bad_unexpected = [k for k in unexpected if bad(k)]
    bad_shapes = [s for s in shapes if bad(s[0])]
    if bad_missing or bad_unexpected or bad_shapes:
        parts = []
        if bad_missing:
            parts.append(f'{len(bad_missing)} missing from the file '
                         f'({_first(bad_missing)})')
        if bad_unexpected:
            parts.append(f'{len(bad_unexpected)} not in the model '
                         f'({_first(bad_unexpected)})')
        if bad_shapes:
            shown = ', '.join(f'{k}: file {f} vs model {m}'
                              for k, f, m in bad_shapes[:SHOWN_KEYS])
            more = ', ...' if len(bad_shapes) > SHOWN_KEYS else ''
            parts.append(f'{len(bad_shapes)} of another shape '
                         f'({shown}{more})')
        # Name the file's kind when it is not the model's kind: a file of
        # another kind, not a near miss.
        kind = ''
        file_kind = checkpoint_kind(state)
        if file_kind.split(' (')[0] != checkpoint_kind(own).split(' (')[0]:
            kind = f' It is {file_kind}; the model expects {expected}.'
        raise CheckpointMismatchError(
            f'{source} does not fit the model: ' + '; '.join(parts) + '.'
            + kind + ' ' + advice, bad_missing, bad_unexpected, bad_shapes)
    return missing, unexpected, shapes
