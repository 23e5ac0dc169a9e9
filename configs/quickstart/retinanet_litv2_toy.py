# Quickstart: RetinaNet with a small LITv2 backbone, trained from scratch on
# the toy shapes data set (tools/make_toy_dataset.py writes it to data/toy) on
# CPU.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    './_base_/toy_coco_detection.py',
]

model = dict(
    backbone={{_base_.litv2_backbone}},
    neck={{_base_.litv2_neck}},
    bbox_head=dict(
        num_classes=3,
        in_channels={{_base_.neck_channels}},
        feat_channels={{_base_.neck_channels}},
        stacked_convs=2,
        # GroupNorm in the head: much faster convergence from scratch
        norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        # square anchors of 24-38 px on P3 (stride 8), 48-76 on P4, ... for
        # the (roughly square) shapes of 20-55 px at this scale
        anchor_generator=dict(octave_base_scale=3, ratios=[1.0]),
        # regress boxes with GIoU: better boxes at the high IoUs of COCO AP
        reg_decoded_bbox=True,
        loss_bbox=dict(_delete_=True, type='GIoULoss', loss_weight=2.0)))
