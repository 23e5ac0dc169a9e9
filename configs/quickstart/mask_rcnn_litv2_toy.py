# Quickstart: Mask R-CNN with a small LITv2 backbone, trained from scratch on
# the toy shapes data set (tools/make_toy_dataset.py writes it to data/toy) on
# CPU. Box and mask AP on the toy validation split.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    './_base_/toy_coco_detection.py',
]
neck_channels = {{_base_.neck_channels}}
img_scale = {{_base_.img_scale}}

model = dict(
    backbone={{_base_.litv2_backbone}},
    neck={{_base_.litv2_neck}},
    rpn_head=dict(
        in_channels=neck_channels,
        feat_channels=neck_channels,
        # anchors of 24-384 px (stride 4-64) for the shapes of 20-55 px at
        # this scale
        anchor_generator=dict(scales=[6])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=neck_channels),
        bbox_head=dict(
            in_channels=neck_channels, fc_out_channels=256, num_classes=3),
        mask_roi_extractor=dict(out_channels=neck_channels),
        mask_head=dict(
            num_convs=2,
            in_channels=neck_channels,
            conv_out_channels=neck_channels,
            num_classes=3)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))

# the shared pipelines, with the instance masks loaded too
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = val_evaluator
