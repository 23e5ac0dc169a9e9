# Semantic FPN, LITv2-M backbone (recipe of the S config).
_base_ = './semantic_fpn_litv2_s_ade20k.py'

model = dict(
    backbone=dict(
        depths=[2, 2, 18, 2],
        init_cfg=dict(checkpoint='https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_m.pth')))  # noqa: E501
