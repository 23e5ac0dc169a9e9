# RetinaNet, LITv2-M backbone, HiLo window 2 (recipe of the S config).
_base_ = './retinanet_litv2_s_w2.py'

model = dict(
    backbone=dict(
        depths=[2, 2, 18, 2],
        init_cfg=dict(checkpoint='https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_m.pth')))  # noqa: E501
