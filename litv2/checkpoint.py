"""The state dicts inside the reference's released checkpoints (pure
PyTorch: no file reading here; ``litv2_openmmlab`` reads files with mmengine,
timm with its own loader).

The layouts, all with the model's own key names:

* ImageNet classifiers (``litv2_{s,m,b}.pth``): ``{'model': {...}}`` with the
  backbone keys plus the classifier's ``norm.*`` and ``head.*``;
* mmdet 2.x / mmseg 0.x / mmengine checkpoints: ``{'state_dict': {...}}`` with
  every backbone key prefixed by ``backbone.``;
* a bare state dict (possibly saved from a DataParallel model: ``module.``);
* the timm classifiers' (``litv2.timm_models``): a bare state dict, or what
  timm's ``train.py`` writes, ``{'state_dict': {...}, 'args': Namespace}``.
"""
import re
from typing import Dict, Optional, Tuple

import torch

# Where a checkpoint keeps its weights, in the order they are looked for.
STATE_DICT_CONTAINERS = ('state_dict', 'model')

# Keys of the ImageNet classifier that have no counterpart in the backbone.
_CLASSIFIER_ONLY = re.compile(r'^(head|norm)\.')


def unwrap_state_dict(checkpoint: dict) -> Dict[str, torch.Tensor]:
    """The state dict of any of the layouts: the first of
    :data:`STATE_DICT_CONTAINERS` that holds a dict, else ``checkpoint``
    itself; with DataParallel's ``module.`` prefixes removed."""
    for container in STATE_DICT_CONTAINERS:
        if isinstance(checkpoint.get(container), dict):
            checkpoint = checkpoint[container]
            break
    return {(k[len('module.'):] if k.startswith('module.') else k): v
            for k, v in checkpoint.items()}


def extract_backbone_state_dict(
        checkpoint: dict,
        prefix: Optional[str] = None) -> Tuple[Dict[str, torch.Tensor], list]:
    """Return ``(backbone_state_dict, dropped_keys)`` from any of the layouts.

    ``prefix`` selects keys under it (e.g. ``'backbone.'``); by default the
    ``backbone.`` prefix is detected. Classifier-only keys are dropped and
    returned so that callers can report them.
    """
    state = unwrap_state_dict(checkpoint)
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
