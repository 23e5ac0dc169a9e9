# Semantic FPN with a LITv2-S backbone (HiLo window 2), ADE20K, 512x512 crops,
# 80k iterations, 16 images per iteration (8 GPUs x 2). The data pipeline is
# mmseg's ADE20K one: resize to 2048x512 with ratio 0.5-2.0, random crop with
# cat_max_ratio 0.75, flip, photometric distortion; test on the whole image
# resized to 2048x512.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmseg_litv2'], allow_failed_imports=False)
# every guarantee of the project (strict loading, reliability hooks, device
# adaptation), also under mmdet's / mmseg's own tools/train.py, tools/test.py
runner_type = 'LITv2Runner'
# for tools that build mmengine's own Runner (mmseg's tools/test.py)
custom_hooks = [dict(type='StrictLoadHook'), dict(type='FiniteWeightsHook')]

crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    # ImageNet-1k weights of the backbone; point it at a local file with
    # --cfg-options model.backbone.init_cfg.checkpoint=/path/to/litv2_s.pth
    backbone=dict(
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
            checkpoint='https://github.com/ziplab/LITv2/releases/download/v1.0/litv2_s.pth')),  # noqa: E501
    # FPN: 4 outputs of 256 channels; FPNHead: 128 channels, dropout 0.1,
    # SyncBN (all from the base).
    neck=dict(in_channels=[96, 192, 384, 768]),
    decode_head=dict(num_classes=150))

train_dataloader = dict(batch_size=2)

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, weight_decay=1e-4))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-6,
        power=0.9,
        begin=0,
        end=80000,
        by_epoch=False)
]
