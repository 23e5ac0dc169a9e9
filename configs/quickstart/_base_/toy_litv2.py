# The small LITv2 of every quickstart config, trained from scratch, and its
# FPN widths. The task configs put them in their model (`{{_base_.…}}`): a
# base of a config with a model base of its own cannot hold `model`.
neck_channels = 64
litv2_backbone = dict(
    _delete_=True,
    type='LITv2',
    embed_dim=32,
    depths=[1, 1, 2, 1],
    num_heads=[1, 2, 4, 8],
    alpha=0.5,
    local_ws=[0, 0, 2, 1],
    drop_path_rate=0.0,
    out_indices=(0, 1, 2, 3),
    init_cfg=None)  # trained from scratch: nothing to download
litv2_neck = dict(in_channels=[32, 64, 128, 256], out_channels=neck_channels)
