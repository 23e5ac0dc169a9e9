# Mask R-CNN, LITv2-M backbone, HiLo window 4 in stage 3.
_base_ = './mask_rcnn_litv2_m_w2.py'

model = dict(backbone=dict(local_ws=[0, 0, 4, 1]))

# Annotations checked as the data sets are built: dropped, clipped and
# unknown ones counted and logged (litv2_openmmlab/datasets/checked_coco.py;
# add strict_annotations=True to a dataset to make them an error). mmdet's
# base reads dataset_type only while it is read itself, so every data loader
# names the type.
dataset_type = 'CheckedCocoDataset'
train_dataloader = dict(dataset=dict(type=dataset_type))
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = val_dataloader
