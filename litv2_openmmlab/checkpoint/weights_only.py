"""Reading checkpoint files as data, never as code.

A ``.pth`` file is a pickle: loaded with ``weights_only=False`` it can call any
function it names (``os.system``...).
:func:`load_from_file_weights_only` is the one function through which this
project reads checkpoints: it always loads with ``weights_only=True`` and
the allow-list of :mod:`.allowed_types` (tensors, plain containers, the
few mmengine/numpy types that Runner checkpoints hold), and turns torch's
long messages into one line naming the file:

* :class:`UnsafeCheckpointError` - the pickle names a function or class
  outside the allow-list; nothing of it ran;
* :class:`CorruptCheckpointError` - truncated, empty, or not a torch file.

:func:`use_safe_checkpoint_loader` registers it as mmengine's
``CheckpointLoader`` scheme for local paths and ``http(s)://`` URLs, so that
``Runner.load_checkpoint`` / ``--resume`` / ``tools/test.py`` /
``init_cfg=dict(type='Pretrained')`` / ``LITv2.load_pretrained`` all use it.
"""
import os
import os.path as osp
import pickle
import re
from urllib.parse import urlparse

import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.runner.checkpoint import CheckpointLoader

from .allowed_types import allow_mmengine_checkpoint_types

# torch's message names the refused global as "GLOBAL module.name"
_GLOBAL = re.compile(r'GLOBAL ([\w.]+)')


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used; the message names the file."""


class UnsafeCheckpointError(CheckpointError):
    """The file's pickle would call something that is not plain data."""


class CorruptCheckpointError(CheckpointError):
    """The file is truncated, empty or not a torch checkpoint."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_from_file_weights_only(filename, map_location=None):
    """``torch.load(filename, weights_only=True)`` with the mmengine
    allow-list (named ``load_from_*`` for the log line of mmengine's
    ``CheckpointLoader``: "Loads checkpoint by file_weights_only backend");
    raises ``FileNotFoundError`` or a :class:`CheckpointError`
    whose one-line message names the file."""
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename!r} not found')
    allow_mmengine_checkpoint_types()
    try:
        return torch.load(filename, map_location=map_location,
                          weights_only=True)
    except pickle.UnpicklingError as err:
        found = _GLOBAL.search(str(err))
        if found is None:  # e.g. a raw pickle with opcodes torch refuses
            raise CorruptCheckpointError(
                f'checkpoint {filename!r} is not a torch checkpoint of '
                f'tensors and plain data ({_first_line(err)})') from None
        raise UnsafeCheckpointError(
            f'checkpoint {filename!r} refused: its pickle asks for '
            f'{found.group(1)}, which is not on the allow-list of data types '
            '(tensors, containers, the mmengine types of '
            'litv2_openmmlab/checkpoint/allowed_types.py); nothing in it was '
            'run. Only '
            'if you trust its source, re-save its tensors with '
            'torch.save(state_dict, ...) in a separate process.') from None
    except (RuntimeError, EOFError, ValueError, KeyError, OSError) as err:
        # torch raises these for truncated zips, empty and foreign files
        raise CorruptCheckpointError(
            f'checkpoint {filename!r} is truncated or not a torch checkpoint '
            f'({type(err).__name__}: {_first_line(err)})') from None


def load_from_url_weights_only(url, map_location=None):
    """Download ``url`` once into torch's hub cache (``TORCH_HOME``; rank 0
    first in a distributed run), then :func:`load_from_file_weights_only`."""
    cache_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    cached = osp.join(cache_dir, osp.basename(urlparse(url).path))
    rank, world_size = get_dist_info()
    if rank == 0 and not osp.isfile(cached):
        os.makedirs(cache_dir, exist_ok=True)
        torch.hub.download_url_to_file(url, cached)  # writes via a temp file
    if world_size > 1:
        barrier()
    return load_from_file_weights_only(cached, map_location)


def use_safe_checkpoint_loader() -> None:
    """Make mmengine's ``CheckpointLoader`` read local files and
    ``http(s)://`` URLs with :func:`load_from_file_weights_only` (process-wide;
    idempotent). mmengine's own loaders call ``torch.load`` without
    ``weights_only`` (its URL loader with ``weights_only=False``)."""
    CheckpointLoader.register_scheme('', load_from_file_weights_only,
                                     force=True)
    CheckpointLoader.register_scheme(('http://', 'https://'),
                                     load_from_url_weights_only, force=True)
