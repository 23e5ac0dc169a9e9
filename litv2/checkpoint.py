"""Reading the reference's released checkpoints into the LITv2 backbone.

Three layouts exist, all with the backbone's own key names:

* ImageNet classifiers (``litv2_{s,m,b}.pth``): ``{'model': {...}}`` with the
  backbone keys plus the classifier's ``norm.*`` and ``head.*``;
* mmdet 2.x / mmseg 0.x / mmengine checkpoints: ``{'state_dict': {...}}`` with
  every backbone key prefixed by ``backbone.``;
* a bare state dict (possibly saved from a DataParallel model: ``module.``);
* the timm classifiers' (``litv2.timm_models``): a bare state dict, or what
  timm's ``train.py`` writes, ``{'state_dict': {...}, 'args': Namespace}``.
"""
import argparse
import contextlib
import re
from typing import Dict, Optional, Tuple

import torch
from mmengine.runner.checkpoint import CheckpointLoader

from litv2_runtime.checkpoint_io import (CheckpointError,
                                         use_safe_checkpoint_loader)

# Keys of the ImageNet classifier that have no counterpart in the backbone.
_CLASSIFIER_ONLY = re.compile(r'^(head|norm)\.')


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
    with an allow-list, see litv2_runtime/checkpoint_io.py), naming the
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


def extract_backbone_state_dict(
        checkpoint: dict,
        prefix: Optional[str] = None) -> Tuple[Dict[str, torch.Tensor], list]:
    """Return ``(backbone_state_dict, dropped_keys)`` from any of the layouts.

    ``prefix`` selects keys under it (e.g. ``'backbone.'``); by default the
    ``backbone.`` prefix is detected. Classifier-only keys are dropped and
    returned so that callers can report them.
    """
    for container in ('state_dict', 'model'):
        if isinstance(checkpoint.get(container), dict):
            checkpoint = checkpoint[container]
            break
    state = {(k[len('module.'):] if k.startswith('module.') else k): v
             for k, v in checkpoint.items()}
    if prefix is None and any(k.startswith('backbone.') for k in state):
        prefix = 'backbone.'
    if prefix:
        selected = {k[len(prefix):]: v for k, v in state.items()
                    if k.startswith(prefix)}
        if not selected:
            raise KeyError(f'no key starts with prefix {prefix!r}')
        state = selected
    dropped = sorted(k for k in state if _CLASSIFIER_ONLY.match(k))
    return {k: v for k, v in state.items() if k not in dropped}, dropped
