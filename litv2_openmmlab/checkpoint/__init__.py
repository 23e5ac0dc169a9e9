"""Checkpoints for the OpenMMLab side: read as data only (``weights_only``
with an allow-list), loaded into a whole model strictly, written atomically.

* ``weights_only.py`` - every scheme of mmengine's ``CheckpointLoader``
  (local, URLs, ``torchvision://``, ``open-mmlab://``, ``pavi://``,
  ``s3://`` ...) read by the one reader of checkpoint files,
  :func:`litv2.checkpoint.read_checkpoint_file`, and
  :func:`use_safe_checkpoint_loader`, which registers them;
* ``allowed_types.py`` - the mmengine types of runner checkpoints for that
  reader (and for ``torch.load``'s allow-list);
* ``pretrained.py`` - :func:`read_checkpoint`, the backbone's reader of
  pretrained files and URLs;
* ``strict_load.py`` - loading a whole model strictly (the tools'
  ``load_from``, ``--resume``, ``tools/test.py``);
* ``atomic_write.py`` - :func:`write_atomically` and the ``atomic_local`` file
  backend; not imported here, as its import registers that backend.

Importing this package registers nothing and changes no loader.
"""
from .allowed_types import (
    allow_mmengine_checkpoint_types,
    mmengine_checkpoint_types,
    mmengine_extra_globals,
)
from .pretrained import read_checkpoint
from .strict_load import (
    CheckpointMismatchError,
    allowed_missing_keys,
    load_checkpoint_strictly,
    load_state_dict_strictly,
    state_dict_of,
)
from .weights_only import (
    SCHEME_LOADERS,
    CheckpointError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    load_checkpoint_safely,
    load_from_file_weights_only,
    use_safe_checkpoint_loader,
)

__all__ = [
    'allow_mmengine_checkpoint_types', 'mmengine_checkpoint_types',
    'mmengine_extra_globals', 'SCHEME_LOADERS',
    'read_checkpoint', 'CheckpointMismatchError', 'allowed_missing_keys',
    'load_checkpoint_strictly', 'load_state_dict_strictly', 'state_dict_of',
    'CheckpointError', 'CorruptCheckpointError',
    'UnsafeCheckpointError', 'load_checkpoint_safely',
    'load_from_file_weights_only',
    'use_safe_checkpoint_loader'
]
