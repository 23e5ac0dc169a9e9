# What the quickstart detectors share: the toy shapes data set
# (tools/make_toy_dataset.py writes it to data/toy), the small LITv2 backbone
# of ./toy_litv2.py, and a short CPU schedule. The detector configs add their
# model's base and heads.
_base_ = [
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    './toy_litv2.py',
    '../../_base_/litv2_runtime.py',
]
custom_imports = dict(imports=['mmdet_litv2'], allow_failed_imports=False)

data_root = 'data/toy/coco/'
metainfo = dict(
    classes=('circle', 'square', 'triangle'),
    palette=[(220, 20, 60), (0, 130, 200), (255, 200, 0)])
img_scale = (160, 160)
max_epochs = 8
# Annotations checked and reported as the data sets are built:
# dropped, clipped and unknown ones counted and logged
# (litv2_openmmlab/datasets/checked_coco.py)
dataset_type = 'CheckedCocoDataset'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    batch_sampler=None,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-3, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0.),
    clip_grad=dict(max_norm=10.0))
# short warm-up, a constant rate, a tenth of it for the last epoch
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=50),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs,
         milestones=[max_epochs - 1], gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0)
auto_scale_lr = dict(enable=False, base_batch_size=8)
