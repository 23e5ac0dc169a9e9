"""A released checkpoint of the reference (mmdet 2.x / mmseg 0.x layout:
``{'state_dict': {backbone.*, neck.*, <heads>.*}, 'meta': {...}}``) loads into
the matching config's full mmdet 3 / mmseg 1 model with no missing or
unexpected key, through mmengine's own loader (torch's ``weights_only=True``).

mmdet 2.x -> 3.x and mmseg 0.x -> 1.x kept the parameter names of every module
of these models (FPN, RetinaHead, RPNHead, Shared2FCBBoxHead, FCNMaskHead,
FPNHead), so no key needs converting; the names below were read from the 2.x /
0.x sources and must exist unchanged in the 3.x / 1.x models.
"""
import pytest
import torch
from mmengine.runner import load_checkpoint

from litv2 import LITV2_ARCHS, local_windows
from litv2.testing.reference import build_reference_backbone, randomize_
from tests.openmmlab.test_configs import build, load

OLD_HEAD_KEYS = {
    'retinanet_litv2_s_w2': [
        'neck.lateral_convs.0.conv.weight', 'neck.fpn_convs.2.conv.bias',
        'neck.fpn_convs.4.conv.weight',  # extra level, 'on_input'
        'bbox_head.cls_convs.0.conv.weight', 'bbox_head.reg_convs.3.conv.bias',
        'bbox_head.retina_cls.weight', 'bbox_head.retina_reg.bias'],
    'mask_rcnn_litv2_s_w4': [
        'neck.lateral_convs.3.conv.weight', 'neck.fpn_convs.3.conv.weight',
        'rpn_head.rpn_conv.weight', 'rpn_head.rpn_cls.weight',
        'rpn_head.rpn_reg.bias', 'roi_head.bbox_head.shared_fcs.0.weight',
        'roi_head.bbox_head.shared_fcs.1.bias',
        'roi_head.bbox_head.fc_cls.weight', 'roi_head.bbox_head.fc_reg.bias',
        'roi_head.mask_head.convs.0.conv.weight',
        'roi_head.mask_head.convs.3.conv.bias',
        'roi_head.mask_head.upsample.weight',
        'roi_head.mask_head.conv_logits.weight'],
    'semantic_fpn_litv2_s_ade20k': [
        'neck.lateral_convs.0.conv.weight', 'neck.fpn_convs.3.conv.bias',
        'decode_head.scale_heads.0.0.conv.weight',
        'decode_head.scale_heads.0.0.bn.running_var',
        'decode_head.scale_heads.3.4.bn.weight',
        'decode_head.conv_seg.weight', 'decode_head.conv_seg.bias'],
}


def released_checkpoint(model, arch, window, seed=0):
    """The reference backbone's weights (its own key names) under
    ``backbone.``, the rest with the model's names, random values."""
    reference = build_reference_backbone(**LITV2_ARCHS[arch], alpha=0.9,
                                         local_ws=local_windows(window))
    state = {f'backbone.{k}': v
             for k, v in randomize_(reference, seed).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    for key, value in model.state_dict().items():
        if not key.startswith('backbone.'):
            state[key] = (torch.randn(value.shape, generator=gen)
                          if value.is_floating_point() else value + 3)
    meta = dict(epoch=12, iter=87960, mmdet_version='2.11.0',
                mmcv_version='1.3.8', CLASSES=('person', 'bicycle'),
                config='model = dict(...)', hook_msgs=dict(last_ckpt='x'))
    return dict(state_dict=state, meta=meta)


@pytest.mark.parametrize('name,arch,window', [
    ('retinanet_litv2_s_w2', 's', 2),
    ('mask_rcnn_litv2_s_w4', 's', 4),
    ('semantic_fpn_litv2_s_ade20k', 's', 2),
])
def test_released_checkpoint_loads_into_full_model(tmp_path, name, arch,
                                                   window):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = load(name)
        assert cfg.model.backbone.local_ws == [0, 0, window, 1]
        model = build(name, cfg)
        old_keys = OLD_HEAD_KEYS[name]
        assert set(old_keys) <= set(model.state_dict())
        checkpoint = released_checkpoint(model, arch, window)
        assert set(old_keys) <= set(checkpoint['state_dict'])
        path = tmp_path / f'{name}_released.pth'
        torch.save(checkpoint, path)
        # strict: raises on any missing or unexpected key
        load_checkpoint(model, str(path), map_location='cpu', strict=True)
        own = model.state_dict()
        assert set(own) == set(checkpoint['state_dict'])
        for key, value in checkpoint['state_dict'].items():
            assert torch.equal(own[key], value), key
    finally:
        torch.set_num_threads(threads)
