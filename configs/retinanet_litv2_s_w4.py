# RetinaNet, LITv2-S backbone, HiLo window 4 in stage 3.
_base_ = './retinanet_litv2_s_w2.py'

model = dict(backbone=dict(local_ws=[0, 0, 4, 1]))
