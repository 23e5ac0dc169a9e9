# Mask R-CNN with a LITv2-S backbone (HiLo window 2), COCO 2017, 1x schedule:
# 12 epochs, lr steps at epochs 8 and 11, 500 iterations of linear warm-up
# (all from mmdet's schedule_1x), 16 images per iteration (8 GPUs x 2).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    './_base_/litv2_s.py',
    './_base_/litv2_runtime.py',
]
custom_imports = dict(imports=['mmdet_litv2'], allow_failed_imports=False)

# LITv2-S with its ImageNet-1k weights (_base_/litv2_s.py)
model = dict(
    backbone={{_base_.litv2_s_backbone}},
    neck=dict(in_channels={{_base_.litv2_s_widths}}))

# AdamW, no weight decay on the norm layers (LayerNorm, and DTM's BatchNorm),
# mixed precision with a dynamic loss scale.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0.))

# Annotations checked as the data sets are built: dropped, clipped and
# unknown ones counted and logged (litv2_openmmlab/datasets/checked_coco.py;
# add strict_annotations=True to a dataset to make them an error). mmdet's
# base reads dataset_type only while it is read itself, so every data loader
# names the type.
dataset_type = 'CheckedCocoDataset'
train_dataloader = dict(dataset=dict(type=dataset_type))
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = val_dataloader
