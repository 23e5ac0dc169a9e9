"""Autocast for an mmdet / mmseg model, its post-processing in fp32.

``torch.autocast`` around a whole detector also runs its post-processing in
low precision: mmcv's CPU NMS and RoIAlign take fp32 only (bf16 boxes stop
two-stage training and every test there), and decoded box coordinates of a
1333-pixel image would lose pixels in bf16. ``autocast_model`` runs the
model under autocast, except the methods of ``FP32_METHODS`` (proposal /
box / mask / segmentation post-processing and the RoI feature extractors),
which run with autocast off on fp32 copies of their tensor arguments. Used
by ``tools/fps.py --amp`` and by ``CPUAutocastOptimWrapper`` (training).

(Autocasting only the network parts and handing their outputs on in fp32
was tried first: the quickstart RetinaNet then trained to box mAP
0.502 / 0.487 (seeds 0 / 1) against 0.558 / 0.544 in fp32, while autocast
around the whole step gave 0.558 / 0.555.)
"""
from contextlib import contextmanager

import torch

# (submodule, method) of mmdet / mmseg models that post-process or pool RoIs
FP32_METHODS = (
    ('rpn_head', 'predict_by_feat'),
    ('bbox_head', 'predict_by_feat'),
    ('roi_head.bbox_roi_extractor', 'forward'),
    ('roi_head.mask_roi_extractor', 'forward'),
    ('roi_head.bbox_head', 'predict_by_feat'),
    ('roi_head.mask_head', 'predict_by_feat'),
    ('decode_head', 'predict_by_feat'),
    ('auxiliary_head', 'predict_by_feat'),
)


def _to_float(value):
    """fp32 copies of the floating tensors in (nested) lists and tuples."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float(v) for v in value)
    return value


@contextmanager
def autocast_model(model: torch.nn.Module, device: str, dtype: torch.dtype):
    """``torch.autocast(device, dtype)`` for everything ``model`` runs in the
    context, but its ``FP32_METHODS`` (patched for the duration)."""
    patched = []
    for name, method in FP32_METHODS:
        try:
            part = model.get_submodule(name)
        except AttributeError:
            continue
        if not hasattr(part, method):
            continue

        def in_fp32(*args, _method=getattr(part, method), **kwargs):
            with torch.autocast(device, enabled=False):
                return _method(*_to_float(args), **{
                    k: _to_float(v) for k, v in kwargs.items()})

        setattr(part, method, in_fp32)  # instance attribute: removed on exit
        patched.append((part, method))
    try:
        with torch.autocast(device, dtype=dtype):
            yield
    finally:
        for part, method in patched:
            delattr(part, method)
