# Semantic FPN, LITv2-B backbone (recipe of the S config).
_base_ = './semantic_fpn_litv2_s_ade20k.py'

model = dict(
    backbone=dict(
        embed_dim=128,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
        drop_path_rate=0.3,
        init_cfg=dict(checkpoint='https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_b.pth')),  # noqa: E501
    neck=dict(in_channels=[128, 256, 512, 1024]))
