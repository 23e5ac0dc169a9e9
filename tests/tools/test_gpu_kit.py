"""The GPU kit (tools/gpu_kit): its stand-in for mmcv's compiled ``mmcv._ext``
against mmcv's real compiled CPU ops, called through mmcv's own Python
wrappers (their ``ext_module`` swapped for the stand-in for one call), and
its shell scripts' syntax.

The stand-in is loaded from its file under another module name; the real
``mmcv._ext`` stays in place for every other test.
"""
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / 'tools' / 'gpu_kit'
SHIM = KIT / 'mmcv_ext.py'


def _load_shim():
    spec = importlib.util.spec_from_file_location('_gpu_kit_mmcv_ext', SHIM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def shim():
    return _load_shim()


def _mmcv_op_module(name):
    """``mmcv.ops.<name>`` the module (``mmcv.ops.nms`` as an attribute is
    the function), skipping without mmcv's compiled ops (on the GPU kit's
    machine ``mmcv._ext`` is the stand-in itself)."""
    ext = pytest.importorskip('mmcv._ext')
    if ext.__file__.endswith('.py'):
        pytest.skip("mmcv._ext is a Python stand-in, not mmcv's compiled ops")
    return importlib.import_module(f'mmcv.ops.{name}')


def _boxes(n, generator, size=100.0):
    xy = torch.rand(n, 2, generator=generator) * size
    wh = torch.rand(n, 2, generator=generator) * size / 3 + 0.5
    return torch.cat([xy, xy + wh], dim=1)


@pytest.mark.timeout(60)
def test_scripts_parse():
    for script in ('build.sh', 'run.sh'):
        subprocess.run(['bash', '-n', str(KIT / script)], check=True)


def test_unknown_op_raises(shim):
    # mmcv's ext_loader asserts hasattr() for every op a module lists
    assert hasattr(shim, 'deform_conv_forward')
    with pytest.raises(NotImplementedError, match='deform_conv_forward'):
        shim.deform_conv_forward(torch.zeros(1))
    # the import machinery's dunder look-ups stay missing
    assert not hasattr(shim, '__path__')
    assert not hasattr(shim, '__all__')


def test_nms_matches_mmcv(shim, monkeypatch):
    nms_mod = _mmcv_op_module('nms')
    g = torch.Generator().manual_seed(0)
    boxes = _boxes(300, g)
    # distinct scores: no tie whose order could differ between sorts
    scores = torch.randperm(300, generator=g).float() / 300
    calls = [
        dict(iou_threshold=0.3),
        dict(iou_threshold=0.5),
        dict(iou_threshold=0.7, score_threshold=0.2, max_num=40),
    ]
    idxs = torch.randint(0, 5, (300, ), generator=g)
    cfg = dict(type='nms', iou_threshold=0.5)
    for numpy in (False, True):
        b, s = (boxes.numpy(), scores.numpy()) if numpy else (boxes, scores)
        for kwargs in calls:
            ref_dets, ref_inds = nms_mod.nms(b, s, **kwargs)
            with monkeypatch.context() as m:
                m.setattr(nms_mod, 'ext_module', shim)
                dets, inds = nms_mod.nms(b, s, **kwargs)
            # the same float32 IoU test (inter / union > threshold) on the
            # same boxes: the same boxes kept, in the same order
            assert type(inds) is type(ref_inds)
            assert (inds == ref_inds).all() and len(inds) == len(ref_inds)
            assert (dets == ref_dets).all()
    ref_dets, ref_keep = nms_mod.batched_nms(boxes, scores, idxs, cfg)
    with monkeypatch.context() as m:
        m.setattr(nms_mod, 'ext_module', shim)
        dets, keep = nms_mod.batched_nms(boxes, scores, idxs, cfg)
        empty_dets, empty_inds = nms_mod.nms(boxes[:0], scores[:0], 0.5)
        with pytest.raises(NotImplementedError, match='offset'):
            nms_mod.nms(boxes, scores, 0.5, offset=1)
    assert torch.equal(keep, ref_keep) and torch.equal(dets, ref_dets)
    assert empty_dets.shape == (0, 5) and empty_inds.dtype == torch.long


@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
def test_roi_align_matches_mmcv(shim, monkeypatch, aligned, sampling_ratio):
    roi_mod = _mmcv_op_module('roi_align')
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(2, 8, 24, 32, generator=g)
    spatial_scale = 0.25  # feature stride 4: the image is 96 x 128
    boxes = _boxes(40, g, size=128.0)
    boxes[:4] = torch.tensor([[-20.0, -10, 30, 40], [100, 80, 160, 120],
                              [5, 5, 5.5, 6], [0, 0, 128, 96]])
    batch = torch.randint(0, 2, (40, 1), generator=g).float()
    rois = torch.cat([batch, boxes], dim=1)
    grad_out = torch.randn(40, 8, 7, 7, generator=g)
    args = ((7, 7), spatial_scale, sampling_ratio, 'avg', aligned)

    def run():
        x = feats.clone().requires_grad_()
        out = roi_mod.roi_align(x, rois, *args)
        out.backward(grad_out)
        return out.detach(), x.grad

    ref_out, ref_grad = run()
    with monkeypatch.context() as m:
        m.setattr(roi_mod, 'ext_module', shim)
        out, grad = run()
        with pytest.raises(NotImplementedError, match='max'):
            roi_mod.roi_align(feats, rois, (7, 7), spatial_scale,
                              sampling_ratio, 'max', aligned)
    # Both are the same float32 bilinear sampling and averaging loops
    # (mmcv's CPU kernel and torchvision's descend from the same Caffe2
    # code); only float32 rounding of the accumulation may differ: values
    # are O(1), so 1e-5 relative / 1e-6 absolute. The input gradient sums
    # up to ~100 scattered contributions per pixel: 1e-5 absolute.
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-5)
    assert ref_out.abs().sum() > 0 and ref_grad.abs().sum() > 0


def _reference_focal(x, target, gamma, alpha, class_weight):
    """mmdet's CPU sigmoid focal loss (py_sigmoid_focal_loss, a different
    formulation: BCE with logits times the focal weight), element-wise;
    mmcv's compiled ops have no CPU sigmoid focal loss to compare with."""
    focal_loss = pytest.importorskip('mmdet.models.losses.focal_loss')
    num_classes = x.size(1)
    one_hot = torch.nn.functional.one_hot(target, num_classes + 1)
    one_hot = one_hot[:, :num_classes].to(x.dtype)
    weight = None if class_weight is None else class_weight[target]
    return focal_loss.py_sigmoid_focal_loss(
        x, one_hot, weight, gamma=gamma, alpha=alpha, reduction='none')


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('with_weight', [False, True])
def test_sigmoid_focal_loss(shim, monkeypatch, dtype, with_weight):
    focal_mod = _mmcv_op_module('focal_loss')
    g = torch.Generator().manual_seed(2)
    n, c, gamma, alpha = 64, 5, 1.5, 0.3
    logits = (torch.rand(n, c, generator=g) * 12 - 6).to(dtype)
    # class c (= background: negative for every class) only without a
    # class weight, which mmcv's kernel reads at weight[target]
    target = torch.randint(0, c if with_weight else c + 1, (n, ),
                           generator=g)
    weight = (torch.rand(c, generator=g) + 0.5).to(dtype) \
        if with_weight else None

    x_ref = logits.clone().requires_grad_()
    ref = _reference_focal(x_ref, target, gamma, alpha, weight)
    # mmcv's 'mean' reduction: sum over classes, mean over samples
    (ref.sum() / n).backward()

    x = logits.clone().requires_grad_()
    with monkeypatch.context() as m:
        m.setattr(focal_mod, 'ext_module', shim)
        out = focal_mod.sigmoid_focal_loss(x, target, gamma, alpha, weight,
                                           'none')
        loss = focal_mod.sigmoid_focal_loss(x, target, gamma, alpha, weight,
                                            'mean')
        loss.backward()
        if with_weight:
            with pytest.raises(ValueError, match='target'):
                focal_mod.sigmoid_focal_loss(x, torch.full_like(target, c),
                                             gamma, alpha, weight, 'sum')
    # log(sigmoid(x)) (mmcv's kernel) against BCE with logits (mmdet): the
    # same value up to rounding; in float32 log(1 - p) of a small p keeps
    # only ~1e-7 / p of relative precision, hence 1e-4 relative (and p**gamma
    # makes those terms tiny: 1e-6 absolute).
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == torch.float32 else dict(
        rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(out, ref.detach(), **tol)
    torch.testing.assert_close(loss, ref.detach().sum() / n, **tol)
    torch.testing.assert_close(x.grad, x_ref.grad, **tol)


@pytest.mark.timeout(60)
def test_mmcv_ops_import_with_shim(tmp_path):
    """In a fresh interpreter with the stand-in as mmcv._ext, every mmcv.ops
    module loads (ext_loader's hasattr checks pass) and the ops run."""
    pytest.importorskip('mmcv')
    code = f"""
import importlib.util, sys
import torch
spec = importlib.util.spec_from_file_location('mmcv._ext', {str(SHIM)!r})
ext = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ext)
sys.modules['mmcv._ext'] = ext
import mmcv.ops
from mmcv.ops import RoIAlign, batched_nms, sigmoid_focal_loss
assert sys.modules['mmcv.ops.roi_align'].ext_module is ext
boxes = torch.tensor([[0., 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
dets, keep = batched_nms(boxes, torch.tensor([.9, .8, .7]),
                         torch.zeros(3, dtype=torch.long),
                         dict(type='nms', iou_threshold=0.5))
assert keep.tolist() == [0, 2], keep
rois = torch.tensor([[0., 0, 0, 8, 8]])
out = RoIAlign((2, 2), 1.0, 0)(torch.ones(1, 3, 8, 8), rois)
assert torch.allclose(out, torch.ones(1, 3, 2, 2))
x = torch.zeros(2, 3, requires_grad=True)
sigmoid_focal_loss(x, torch.tensor([0, 3]), 2.0, 0.25).backward()
assert x.grad.shape == (2, 3)
try:
    mmcv.ops.deform_conv2d(torch.zeros(1, 1, 3, 3), torch.zeros(1, 18, 1, 1),
                           torch.zeros(1, 1, 3, 3))
except NotImplementedError as e:
    assert 'deform_conv_forward' in str(e), e
else:
    raise AssertionError('deform_conv2d ran')
print('ok')
"""
    path = [str(ROOT)] + [p for p in [os.environ.get('PYTHONPATH')] if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    result = subprocess.run([sys.executable, '-c', code], cwd=tmp_path,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith('ok')


@pytest.mark.cuda
def test_cuda_matches_cpu(shim):
    """On a GPU: the stand-in's ops on CUDA tensors (torchvision's CUDA
    kernels, torch's CUDA maths) agree with the same ops on CPU."""
    g = torch.Generator().manual_seed(3)
    cuda = torch.device('cuda')
    boxes = _boxes(2000, g)
    scores = torch.randperm(2000, generator=g).float() / 2000
    keep = shim.nms(boxes, scores, 0.5)
    # a box within float32 rounding of the threshold could go either way;
    # random boxes have none
    assert torch.equal(shim.nms(boxes.to(cuda), scores.to(cuda), 0.5).cpu(),
                       keep)

    feats = torch.randn(2, 16, 40, 48, generator=g)
    rois = torch.cat([torch.randint(0, 2, (300, 1), generator=g).float(),
                      _boxes(300, g, size=160.0)], dim=1)
    grad_out = torch.randn(300, 16, 7, 7, generator=g)
    outs, grads = [], []
    for device in ('cpu', cuda):
        out = torch.zeros(300, 16, 7, 7, device=device)
        grad = torch.zeros(feats.shape, device=device)
        empty = torch.zeros(0, device=device)
        shim.roi_align_forward(feats.to(device), rois.to(device), out, empty,
                               empty, 7, 7, 0.25, 0, 1, True)
        shim.roi_align_backward(grad_out.to(device), rois.to(device), empty,
                                empty, grad, 7, 7, 0.25, 0, 1, True)
        outs.append(out.cpu())
        grads.append(grad.cpu())
    # float32; the CUDA backward adds with atomics in any order
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-5)

    logits = torch.randn(500, 80, generator=g) * 4
    target = torch.randint(0, 81, (500, ), generator=g)
    for fn in (shim.sigmoid_focal_loss_forward,
               shim.sigmoid_focal_loss_backward):
        res = []
        for device in ('cpu', cuda):
            out = torch.zeros(500, 80, device=device)
            fn(logits.to(device), target.to(device),
               torch.zeros(0, device=device), out, 2.0, 0.25)
            res.append(out.cpu())
        torch.testing.assert_close(res[1], res[0], rtol=1e-5, atol=1e-6)
