# Quickstart: Semantic FPN with a small LITv2 backbone, trained from scratch on
# the toy shapes data set (tools/make_toy_dataset.py writes it to data/toy) on
# CPU. The label maps hold 0 = background, 1 = circle, 2 = square,
# 3 = triangle: background is a class here, so reduce_zero_label=False (unlike
# ADE20K, whose 0 is "other" and ignored).
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    './_base_/toy_litv2.py',
    '../_base_/litv2_runtime.py',
]
custom_imports = dict(imports=['mmseg_litv2'], allow_failed_imports=False)

data_root = 'data/toy/seg'
metainfo = dict(
    classes=('background', 'circle', 'square', 'triangle'),
    palette=[[0, 0, 0], [220, 20, 60], [0, 130, 200], [255, 200, 0]])
crop_size = (128, 128)
img_scale = (192, 192)
max_iters = 400
# plain BatchNorm (the base's SyncBN runs on GPUs only)
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    data_preprocessor=dict(size=crop_size, test_cfg=dict(size_divisor=32)),
    pretrained=None,
    backbone={{_base_.litv2_backbone}},
    neck={{_base_.litv2_neck}},
    decode_head=dict(
        in_channels=[64, 64, 64, 64],
        channels=64,
        num_classes=4,
        norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(
        type='RandomResize',
        scale=img_scale,
        ratio_range=(0.75, 1.25),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=metainfo,
    img_suffix='.png',
    seg_map_suffix='.png',
    reduce_zero_label=False)
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        **dataset,
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        **dataset,
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=50),
    dict(
        type='PolyLR',
        eta_min=1e-5,
        power=0.9,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
randomness = dict(seed=0)
