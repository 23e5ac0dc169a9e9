"""Every checkpoint scheme of mmengine read as data, never as code.

A ``.pth`` file is a pickle: mmengine 0.10.7's loaders call ``torch.load``
without ``weights_only`` and its URL schemes go through
``torch.hub.load_state_dict_from_url`` (``weights_only=False``), so a file
could call any function it names (``os.system``...). Here every scheme that
mmengine's ``CheckpointLoader`` knows is registered again with a loader
that finds the file the way mmengine does (URL tables, torch's hub cache,
``MMENGINE_HOME``, pavi, petrel) and reads it with the one reader of
:func:`litv2.checkpoint.read_checkpoint_file` (tensors, plain data, numpy,
config objects as plain dicts, plus mmengine's ``HistoryBuffer`` from
:mod:`.allowed_types`):

* :class:`UnsafeCheckpointError` - the pickle names a function or class
  outside the list; nothing of it ran;
* :class:`CorruptCheckpointError` - truncated, empty, or not a checkpoint.

:func:`use_safe_checkpoint_loader` makes the registrations (the plugins do
on import, :func:`litv2_openmmlab.plugin.install_plugin`: the one place
where it is installed), so ``Runner.load_checkpoint`` / ``load_from`` /
``--resume`` /
``tools/test.py`` / ``init_cfg=dict(type='Pretrained')`` of any backbone /
``LITv2.load_pretrained`` all use it. A scheme that mmengine knows and this
module does not (:data:`SCHEME_LOADERS`) is refused. The project's own
readers (``read_checkpoint``, strict loading, ``LITv2Runner``) call
:func:`load_checkpoint_safely`, which picks the same loaders without going
through mmengine's registry.
"""
import io
import os
import os.path as osp
import re
from tempfile import TemporaryDirectory
from urllib.parse import urlparse

import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.runner.checkpoint import CheckpointLoader

from litv2.checkpoint import (
    CheckpointError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    read_checkpoint_file,
)

from .allowed_types import mmengine_extra_globals

__all__ = [
    'CheckpointError', 'CorruptCheckpointError', 'UnsafeCheckpointError',
    'load_from_file_weights_only', 'load_from_url_weights_only',
    'load_checkpoint_safely', 'use_safe_checkpoint_loader', 'SCHEME_LOADERS'
]


def _read(source, map_location, name=None):
    return read_checkpoint_file(source, map_location,
                                extra_globals=mmengine_extra_globals(),
                                name=name)


def load_from_file_weights_only(filename, map_location=None):
    """A local checkpoint read as data (named ``load_from_*`` for the log
    line of mmengine's ``CheckpointLoader``); ``FileNotFoundError``,
    ``IsADirectoryError`` or a :class:`CheckpointError` whose one-line
    message names the file."""
    return _read(str(filename), map_location)


def load_from_url_weights_only(url, map_location=None, model_dir=None):
    """Download ``url`` once into torch's hub cache
    (``$TORCH_HOME/hub/checkpoints``, where torch.hub and mmengine keep
    it; rank 0 first in a distributed run), then read it as data."""
    cache_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    cached = osp.join(cache_dir, osp.basename(urlparse(url).path))
    rank, world_size = get_dist_info()
    if rank == 0 and not osp.isfile(cached):
        os.makedirs(cache_dir, exist_ok=True)
        torch.hub.download_url_to_file(url, cached)  # writes via a temp file
    if world_size > 1:
        barrier()
    return _read(cached, map_location, name=f'{url} (cached as {cached})')


def _model_url(table: dict, scheme: str, model_name: str) -> str:
    if model_name not in table:
        raise CheckpointError(
            f'checkpoint {scheme}{model_name!r}: mmengine knows no model '
            f'{model_name!r} under {scheme} (e.g. '
            f'{", ".join(sorted(table)[:3])})')
    return table[model_name]


def load_from_torchvision_weights_only(filename, map_location=None):
    """``torchvision://NAME`` / ``modelzoo://NAME``: torchvision's URL of
    NAME (mmengine's table), read as data."""
    from mmengine.runner.checkpoint import get_torchvision_models
    scheme, model_name = filename.split('://', 1)
    url = _model_url(get_torchvision_models(), f'{scheme}://', model_name)
    return load_from_url_weights_only(url, map_location)


def load_from_openmmlab_weights_only(filename, map_location=None):
    """``open-mmlab://NAME`` / ``openmmlab://NAME``: mmengine's table
    (with ``$MMENGINE_HOME/open_mmlab.json`` and the deprecated names), a
    URL or a file under ``MMENGINE_HOME``, read as data."""
    from mmengine.runner.checkpoint import (
        _get_mmengine_home,
        get_deprecated_model_names,
        get_external_models,
    )
    scheme, model_name = filename.split('://', 1)
    model_name = get_deprecated_model_names().get(model_name, model_name)
    url = _model_url(get_external_models(), f'{scheme}://', model_name)
    if url.startswith(('http://', 'https://')):
        return load_from_url_weights_only(url, map_location)
    return _read(osp.join(_get_mmengine_home(), url), map_location,
                 name=f'{filename} ({osp.join(_get_mmengine_home(), url)})')


def load_from_mmcls_weights_only(filename, map_location=None):
    """``mmcls://NAME``: mmengine's table, read as data, then mmengine's
    selection of the ``backbone.`` keys."""
    from mmengine.runner.checkpoint import (
        _process_mmcls_checkpoint,
        get_mmcls_models,
    )
    model_name = filename[len('mmcls://'):]
    url = _model_url(get_mmcls_models(), 'mmcls://', model_name)
    return _process_mmcls_checkpoint(
        load_from_url_weights_only(url, map_location))


def load_from_pavi_weights_only(filename, map_location=None):
    """``pavi://PATH``: downloaded by pavi's model cloud, read as data."""
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError('Please install pavi to load checkpoint from '
                          f'modelcloud ({filename})') from None
    model = modelcloud.get(filename[len('pavi://'):])
    with TemporaryDirectory() as tmp_dir:
        downloaded = osp.join(tmp_dir, model.name)
        model.download(downloaded)
        return _read(downloaded, map_location, name=filename)


def load_from_ceph_weights_only(filename, map_location=None,
                                backend='petrel'):
    """``s3://`` / ``petrel://`` (optionally ``CLUSTER:s3://``): the bytes
    from mmengine's petrel file backend, read as data."""
    from mmengine.fileio import get_file_backend
    file_backend = get_file_backend(filename,
                                    backend_args={'backend': backend})
    with io.BytesIO(file_backend.get(filename)) as buffer:
        return _read(buffer, map_location, name=filename)


def _refuse_unknown_scheme(filename, map_location=None):
    raise CheckpointError(
        f'checkpoint {filename!r}: its scheme is registered in mmengine but '
        'not known to litv2_openmmlab as read safely '
        '(litv2_openmmlab/checkpoint/weights_only.py), so it is refused; '
        'download the file and give its local path')


# Every prefix that mmengine 0.10.7's CheckpointLoader registers, with the
# loader that reads it as data
# (tests/checkpoints/test_checkpoint_schemes.py compares this with
# mmengine's own registrations).
SCHEME_LOADERS = {
    '': load_from_file_weights_only,
    'http://': load_from_url_weights_only,
    'https://': load_from_url_weights_only,
    'torchvision://': load_from_torchvision_weights_only,
    'modelzoo://': load_from_torchvision_weights_only,
    'open-mmlab://': load_from_openmmlab_weights_only,
    'openmmlab://': load_from_openmmlab_weights_only,
    'mmcls://': load_from_mmcls_weights_only,
    'pavi://': load_from_pavi_weights_only,
    r'(\S+\:)?s3://': load_from_ceph_weights_only,
    r'(\S+\:)?petrel://': load_from_ceph_weights_only,
}


def load_checkpoint_safely(filename, map_location=None):
    """Read ``filename`` (a path or any scheme of :data:`SCHEME_LOADERS`)
    as data with the loader that mmengine's ``CheckpointLoader`` would pick
    once :func:`use_safe_checkpoint_loader` has run (the same prefix
    matching: lexicographically greater prefixes first, so the empty one,
    local files, last), without
    depending on that registration: the project's own readers call this."""
    filename = str(filename)
    for prefix in sorted(SCHEME_LOADERS, reverse=True):
        if re.match(prefix, filename) is not None:
            return SCHEME_LOADERS[prefix](filename, map_location)
    raise AssertionError('the empty prefix matches every name')


def use_safe_checkpoint_loader() -> None:
    """Register :data:`SCHEME_LOADERS` in mmengine's ``CheckpointLoader``
    (process-wide; idempotent), and a refusal for any other scheme it has
    (one registered after this call is not covered: call it again)."""
    for prefix in list(CheckpointLoader._schemes):
        if prefix not in SCHEME_LOADERS:
            CheckpointLoader.register_scheme(prefix, _refuse_unknown_scheme,
                                             force=True)
    for prefix, loader in SCHEME_LOADERS.items():
        CheckpointLoader.register_scheme(prefix, loader, force=True)
