# Mask R-CNN with a LITv2-S backbone (HiLo window 2), COCO 2017, 1x schedule:
# 12 epochs, lr steps at epochs 8 and 11, 500 iterations of linear warm-up
# (all from mmdet's schedule_1x), 16 images per iteration (8 GPUs x 2).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmdet_litv2'], allow_failed_imports=False)
# every guarantee of the project (strict loading, reliability hooks, device
# adaptation), also under mmdet's / mmseg's own tools/train.py, tools/test.py
runner_type = 'LITv2Runner'
# for tools that build mmengine's own Runner (mmseg's tools/test.py)
custom_hooks = [dict(type='StrictLoadHook'), dict(type='FiniteWeightsHook')]

# ImageNet-1k weights of the backbone; point it at a local file with
# --cfg-options model.backbone.init_cfg.checkpoint=/path/to/litv2_s.pth
model = dict(
    backbone=dict(
        _delete_=True,
        type='LITv2',
        embed_dim=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        alpha=0.9,
        local_ws=[0, 0, 2, 1],
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        use_checkpoint=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_s.pth')),  # noqa: E501
    neck=dict(in_channels=[96, 192, 384, 768]))

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
