# Mask R-CNN, LITv2-B backbone, HiLo window 4 in stage 3.
_base_ = './mask_rcnn_litv2_b_w2.py'

model = dict(backbone=dict(local_ws=[0, 0, 4, 1]))
