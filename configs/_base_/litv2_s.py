# The LITv2-S backbone of the paper's detection and segmentation configs
# (HiLo window 2 in stage 3, ImageNet-1k weights) and its output widths. A
# task config puts them in its model, `backbone={{_base_.litv2_s_backbone}}`
# (a base beside a model base cannot hold `model` itself); the M, B and
# window-4 configs inherit an S config and change what differs.
# Point the weights at a local file with
# --cfg-options model.backbone.init_cfg.checkpoint=/path/to/litv2_s.pth
litv2_s_backbone = dict(
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
        checkpoint='https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_s.pth'))  # noqa: E501
litv2_s_widths = [96, 192, 384, 768]
