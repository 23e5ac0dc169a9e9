# RetinaNet, LITv2-M backbone, HiLo window 2 (recipe of the S config).
_base_ = './retinanet_litv2_s_w2.py'

model = dict(
    backbone=dict(
        depths=[2, 2, 18, 2],
        init_cfg=dict(checkpoint='https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_m.pth')))  # noqa: E501

# Annotations checked as the data sets are built: dropped, clipped and
# unknown ones counted and logged (litv2_openmmlab/datasets/checked_coco.py;
# add strict_annotations=True to a dataset to make them an error). mmdet's
# base reads dataset_type only while it is read itself, so every data loader
# names the type.
dataset_type = 'CheckedCocoDataset'
train_dataloader = dict(dataset=dict(type=dataset_type))
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = val_dataloader
