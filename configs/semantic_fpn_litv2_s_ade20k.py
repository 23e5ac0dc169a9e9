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
    './_base_/litv2_s.py',
    './_base_/litv2_runtime.py',
]
custom_imports = dict(imports=['mmseg_litv2'], allow_failed_imports=False)

crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    # LITv2-S with its ImageNet-1k weights (_base_/litv2_s.py)
    backbone={{_base_.litv2_s_backbone}},
    # FPN: 4 outputs of 256 channels; FPNHead: 128 channels, dropout 0.1,
    # SyncBN (all from the base).
    neck=dict(in_channels={{_base_.litv2_s_widths}}),
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
