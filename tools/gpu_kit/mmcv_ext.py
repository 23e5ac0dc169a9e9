"""A pure-Python stand-in for mmcv's compiled extension ``mmcv._ext``.

Why: the GPU check runs on a machine without network where mmcv's CUDA ops
cannot be compiled within its time budget, so the GPU kit
(``tools/gpu_kit/build.sh``) ships mmcv built without them (``mmcv-lite``,
``MMCV_WITH_OPS=0``) and ``tools/gpu_kit/run.sh`` installs this file as
``mmcv/_ext.py``. Every ``mmcv/ops/*.py`` loads its kernels at import time
through ``mmcv.utils.ext_loader.load_ext('_ext', [names])``, which imports
``mmcv._ext`` and asserts that it has each name; with this module
``import mmcv.ops`` (and so mmdet, mmseg) works.

What it covers, with the argument conventions of mmcv 2.1.0's Python
wrappers and the semantics of its kernels, computed by torchvision's
compiled kernels (CPU and CUDA) and plain torch:

- ``nms`` (``mmcv.ops.nms``, ``batched_nms``): ``torchvision.ops.nms``;
  only ``offset=0`` (the default, and what mmdet 3 uses).
- ``roi_align_forward`` / ``roi_align_backward`` (``mmcv.ops.RoIAlign``, the
  RoI extractor of Mask R-CNN): ``torchvision.ops.roi_align`` and its
  backward kernel; average pooling only (``pool_mode='avg'``, the default).
- ``sigmoid_focal_loss_forward`` / ``sigmoid_focal_loss_backward``
  (``mmcv.ops.sigmoid_focal_loss``, which mmdet's ``FocalLoss`` calls for
  CUDA predictions): the formulas of mmcv's CUDA kernel in torch.
- ``get_compiler_version`` / ``get_compiling_cuda_version`` (environment
  reports), which say that mmcv has no compiled ops.

Any other op name is a function that raises ``NotImplementedError`` naming
the op when called, so that importing the ops that are not needed works.
"""
import torch
import torchvision

_KIT_OPS = ('nms, roi_align_forward, roi_align_backward, '
            'sigmoid_focal_loss_forward, sigmoid_focal_loss_backward')

# The float clamp of mmcv's focal-loss kernel before log(): FLT_MIN.
_FLT_MIN = torch.finfo(torch.float32).tiny


def get_compiler_version():
    return 'none (mmcv without compiled ops; GPU kit stand-in for mmcv._ext)'


def get_compiling_cuda_version():
    # what mmcv's own extension answers when built without CUDA
    return 'not available'


def nms(boxes, scores, iou_threshold, offset=0):
    """Indices of the boxes kept, in decreasing order of score.

    Boxes are (x1, y1, x2, y2); a box is suppressed when its IoU with a
    kept box of higher score is greater than ``iou_threshold``.
    """
    if offset != 0:
        raise NotImplementedError(
            f'mmcv op nms: offset={offset} is not supported by the GPU '
            'kit stand-in for mmcv._ext (torchvision.ops.nms measures boxes '
            'as x2 - x1, i.e. offset=0)')
    if boxes.numel() == 0:
        return boxes.new_empty((0, ), dtype=torch.long)
    return torchvision.ops.nms(boxes, scores.to(boxes.dtype),
                               float(iou_threshold))


def _check_avg(pool_mode):
    # mmcv.ops.RoIAlignFunction passes 0 for 'max', 1 for 'avg'
    if pool_mode != 1:
        raise NotImplementedError(
            "mmcv op roi_align: pool_mode='max' is not supported by the GPU "
            "kit stand-in for mmcv._ext (torchvision's RoIAlign averages: "
            "use pool_mode='avg')")


def roi_align_forward(input,
                      rois,
                      output,
                      argmax_y,
                      argmax_x,
                      aligned_height=7,
                      aligned_width=7,
                      spatial_scale=1.0,
                      sampling_ratio=0,
                      pool_mode=1,
                      aligned=True):
    """Fill ``output`` (R, C, aligned_height, aligned_width) in place.

    ``rois`` is (R, 5): batch index, x1, y1, x2, y2. ``argmax_y`` and
    ``argmax_x`` hold the sampling point of the maximum in max mode only;
    in average mode they are empty and left alone.
    """
    _check_avg(pool_mode)
    out = torchvision.ops.roi_align(
        input,
        rois.to(input.dtype),
        (int(aligned_height), int(aligned_width)),
        spatial_scale=float(spatial_scale),
        sampling_ratio=int(sampling_ratio),
        aligned=bool(aligned))
    output.copy_(out)


def roi_align_backward(grad_output,
                       rois,
                       argmax_y,
                       argmax_x,
                       grad_input,
                       aligned_height=7,
                       aligned_width=7,
                       spatial_scale=1.0,
                       sampling_ratio=0,
                       pool_mode=1,
                       aligned=True):
    """Add the gradient with respect to the input to ``grad_input``.

    RoIAlign is linear in its input, so the gradient depends on the shape of
    the input only (``grad_input``'s), not on its values.
    """
    _check_avg(pool_mode)
    batch, channels, height, width = grad_input.shape
    grad = torch.ops.torchvision._roi_align_backward(
        grad_output.contiguous(), rois.to(grad_output.dtype),
        float(spatial_scale), int(aligned_height), int(aligned_width), batch,
        channels, height, width, int(sampling_ratio), bool(aligned))
    grad_input.add_(grad)


def _focal_terms(input, target, weight):
    """p = sigmoid(input), the one-hot mask of the targets and the weight of
    each sample's target class (or None), computed in float32 at least."""
    if input.dtype in (torch.float16, torch.bfloat16):
        input = input.float()
    num_classes = input.size(1)
    pos = target[:, None] == torch.arange(num_classes, device=input.device)
    w = None
    if weight is not None and weight.numel() > 0:
        # mmcv's kernel reads weight[target]: undefined for background
        # targets (== num_classes) or any other label outside the classes.
        if target.numel() and bool(((target < 0) |
                                    (target >= num_classes)).any()):
            raise ValueError(
                'mmcv op sigmoid_focal_loss: with a class weight every '
                f'target must lie in [0, {num_classes})')
        w = weight.to(input.dtype)[target][:, None]
    return torch.sigmoid(input), pos, w


def sigmoid_focal_loss_forward(input,
                               target,
                               weight,
                               output,
                               gamma=2.0,
                               alpha=0.25):
    """Fill ``output`` (N, C) with the element-wise sigmoid focal loss.

    ``target`` (N, ) holds class indices; ``num_classes`` (= C) or any other
    index outside [0, C) marks a sample negative for every class.
    ``weight`` is empty or (C, ): the loss of sample n is scaled by
    ``weight[target[n]]``.
    """
    p, pos, w = _focal_terms(input, target, weight)
    gamma, alpha = float(gamma), float(alpha)
    log_p = p.clamp(min=_FLT_MIN).log()
    log_1mp = (1 - p).clamp(min=_FLT_MIN).log()
    loss = torch.where(pos, -alpha * (1 - p).pow(gamma) * log_p,
                       -(1 - alpha) * p.pow(gamma) * log_1mp)
    if w is not None:
        loss = loss * w
    output.copy_(loss)


def sigmoid_focal_loss_backward(input,
                                target,
                                weight,
                                grad_input,
                                gamma=2.0,
                                alpha=0.25):
    """Fill ``grad_input`` (N, C) with d loss / d input, element-wise (the
    wrapper scales it by the incoming gradient and the reduction)."""
    p, pos, w = _focal_terms(input, target, weight)
    gamma, alpha = float(gamma), float(alpha)
    log_p = p.clamp(min=_FLT_MIN).log()
    log_1mp = (1 - p).clamp(min=_FLT_MIN).log()
    term_p = (1 - p).pow(gamma) * (1 - p - gamma * p * log_p)
    term_n = p.pow(gamma) * (gamma * (1 - p) * log_1mp - p)
    grad = torch.where(pos, -alpha * term_p, -(1 - alpha) * term_n)
    if w is not None:
        grad = grad * w
    grad_input.copy_(grad)


def __getattr__(name):
    # Private and dunder names (__path__, __all__, ...) are looked up by the
    # import machinery and tools: they must stay missing.
    if name.startswith('_'):
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

    def unsupported(*args, **kwargs):
        raise NotImplementedError(
            f'mmcv op {name!r} is not available: mmcv was installed without '
            'its compiled ops, and the GPU kit stand-in for mmcv._ext '
            f'(tools/gpu_kit/mmcv_ext.py) supplies only {_KIT_OPS}')

    unsupported.__name__ = unsupported.__qualname__ = name
    return unsupported
