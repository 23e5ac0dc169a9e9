"""Reading checkpoint files for the OpenMMLab backbone: mmengine's
``CheckpointLoader`` (local paths, URLs, ``open-mmlab://`` ...) with the
``weights_only`` allow-list of :mod:`.weights_only`."""
import argparse
import contextlib

import torch
from mmengine.runner.checkpoint import CheckpointLoader

from .weights_only import (
    CheckpointError,
    use_safe_checkpoint_loader,
)


def _allow_timm_train_args():
    """timm's ``train.py`` saves its command line (an ``argparse.Namespace``
    of plain values) as ``'args'`` beside ``'state_dict'``; allow that one
    class while reading, as timm's own loader does, so those ImageNet
    checkpoints load with ``weights_only=True``. (Not process-wide: torch's
    ``safe_globals`` context of timm's loader removes the class on exit.)"""
    serialization = torch.serialization
    if (not hasattr(serialization, 'safe_globals')
            or argparse.Namespace in serialization.get_safe_globals()):
        return contextlib.nullcontext()
    return serialization.safe_globals([argparse.Namespace])


def read_checkpoint(filename: str) -> dict:
    """Load a checkpoint file or URL on CPU as data only (``weights_only``
    with an allow-list, see weights_only.py), naming the
    file on failure."""
    use_safe_checkpoint_loader()
    try:
        with _allow_timm_train_args():
            checkpoint = CheckpointLoader.load_checkpoint(filename,
                                                          map_location='cpu')
    except (FileNotFoundError, CheckpointError):
        raise  # their messages name the file
    except Exception as err:  # torch raises many types; name the file.
        raise RuntimeError(
            f'could not read checkpoint {filename!r}: {err}') from err
    if not isinstance(checkpoint, dict):
        raise RuntimeError(f'checkpoint {filename!r} holds a '
                           f'{type(checkpoint).__name__}, not a state dict')
    return checkpoint
