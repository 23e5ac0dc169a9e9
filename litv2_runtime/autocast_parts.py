"""Autocast for the network of an mmdet / mmseg model, not for what follows.

``torch.autocast`` around a whole detector also runs its post-processing in
low precision: mmcv's CPU NMS and RoIAlign take fp32 only (bf16 boxes stop
training and testing there), and decoded box coordinates of a 1333-pixel
image would lose pixels in bf16. ``autocast_network`` runs the parts that
compute features and head outputs (``NETWORK_PARTS``) under autocast and
hands their outputs on in fp32, so losses, box decoding, NMS and resizing
run in fp32 as written. Used by ``tools/fps.py --amp`` and by
``CPUAutocastOptimWrapper`` (training).
"""
from contextlib import contextmanager

import torch

# The parts of a detector / segmentor that compute features and head outputs.
NETWORK_PARTS = ('backbone', 'neck', 'rpn_head', 'bbox_head',
                 'roi_head.bbox_head', 'roi_head.mask_head', 'decode_head',
                 'auxiliary_head')


def _to_float(value):
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_float(v) for k, v in value.items()}
    return value


@contextmanager
def autocast_network(model: torch.nn.Module, device: str,
                     dtype: torch.dtype):
    """Run the network parts of ``model`` (``NETWORK_PARTS``) under
    ``torch.autocast(device, dtype)`` and hand their outputs on in fp32, so
    that post-processing runs in fp32 as it was written for."""
    patched = []
    for name in NETWORK_PARTS:
        try:
            part = model.get_submodule(name)
        except AttributeError:
            continue

        def forward(*args, _forward=part.forward, **kwargs):
            with torch.autocast(device, dtype=dtype):
                return _to_float(_forward(*args, **kwargs))

        part.forward = forward  # instance attribute: removed on exit
        patched.append(part)
    try:
        yield
    finally:
        for part in patched:
            del part.forward
