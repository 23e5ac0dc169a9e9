# Mask R-CNN, LITv2-B backbone, HiLo window 2 (recipe of the S config), with
# gradient checkpointing in the backbone.
_base_ = './mask_rcnn_litv2_s_w2.py'

model = dict(
    backbone=dict(
        embed_dim=128,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
        drop_path_rate=0.3,
        use_checkpoint=True,
        init_cfg=dict(checkpoint='https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_b.pth')),  # noqa: E501
    neck=dict(in_channels=[128, 256, 512, 1024]))
