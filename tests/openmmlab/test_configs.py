"""The paper's 15 configs: recipe, build, one training step, parameter counts.

Every full-size model is built exactly once (cached by name for the parameter
count test), with ``init_cfg=None`` so that nothing is downloaded, and trained
for one step on one tiny synthetic image.
"""
import copy
import functools

import pytest
import torch
from mmengine.config import Config

from litv2 import LITV2_ARCHS, local_windows
from litv2.paper_figures import CLASSIFIERS, DENSE_MODELS, RELEASE_URL
from tests.tiny_data import CONFIGS

# The recipe's stochastic depth per variant (the architecture itself, embed
# dim, depths and heads, is LITV2_ARCHS; the configs' parameter counts are
# checked against the paper's tables below).
DROP_PATH = {'s': 0.2, 'm': 0.2, 'b': 0.3}
DETECTION = [f'{model}_litv2_{v}_w{w}' for model in ('retinanet', 'mask_rcnn')
             for v in 'smb' for w in (2, 4)]
SEGMENTATION = [f'semantic_fpn_litv2_{v}_ade20k' for v in 'smb']
ALL = DETECTION + SEGMENTATION

# Params (M) in the paper's tables, to the rounding shown.
PAPER_PARAMS_M = {name: m.params_m for name, m in DENSE_MODELS.items()}
PARAM_COUNTS = {}  # name -> parameters of the built model


pytestmark = pytest.mark.usefixtures('one_thread')


@functools.lru_cache(maxsize=None)
def _load(name):
    return Config.fromfile(str(CONFIGS / f'{name}.py'))


def load(name):
    """The parsed config (parsed once per session; a copy is returned)."""
    return copy.deepcopy(_load(name))


def variant(name):
    return name.split('_litv2_')[1][0]


def build(name, cfg=None):
    cfg = cfg or load(name)
    cfg.model.backbone.init_cfg = None
    if name.startswith('semantic_fpn'):
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
    else:
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    model = MODELS.build(cfg.model)
    PARAM_COUNTS[name] = sum(p.numel() for p in model.parameters())
    return model


def test_every_config_is_there():
    assert len(ALL) == 15
    assert {p.stem for p in CONFIGS.glob('*.py')} == set(ALL)


@pytest.mark.parametrize('name', ALL)
def test_backbone_settings(name):
    cfg = load(name)
    arch = LITV2_ARCHS[variant(name)]
    width = arch['embed_dim']
    bb = cfg.model.backbone
    assert bb.type == 'LITv2'
    assert (bb.embed_dim, bb.depths, bb.num_heads) == (
        width, list(arch['depths']), list(arch['num_heads']))
    assert bb.drop_path_rate == DROP_PATH[variant(name)] and bb.alpha == 0.9
    window = 4 if name.endswith('_w4') else 2
    assert bb.local_ws == list(local_windows(window))
    assert bb.out_indices == (0, 1, 2, 3)
    assert bb.use_checkpoint == (variant(name) == 'b'
                                 and name not in SEGMENTATION)
    assert bb.init_cfg == dict(
        type='Pretrained',
        checkpoint=RELEASE_URL + CLASSIFIERS[f'litv2_{variant(name)}'].weights)
    # no ResNet key survives the backbone swap
    assert not {'depth', 'style', 'norm_eval', 'num_stages'} & set(bb)
    assert cfg.model.neck.in_channels == [width * 2**i for i in range(4)]
    task = 'mmseg' if name in SEGMENTATION else 'mmdet'
    assert cfg.default_scope == task
    assert cfg.custom_imports == dict(imports=[f'{task}_litv2'],
                                      allow_failed_imports=False)


@pytest.mark.parametrize('name', DETECTION)
def test_detection_recipe(name):
    cfg = load(name)
    retina = name.startswith('retinanet')
    optim = cfg.optim_wrapper
    assert optim.type == 'AmpOptimWrapper'
    assert optim.optimizer == dict(type='AdamW', lr=1e-4 if retina else 2e-4,
                                   weight_decay=1e-4)
    assert optim.paramwise_cfg == dict(norm_decay_mult=0.0)
    assert cfg.train_cfg.max_epochs == 12
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.by_epoch, warmup.end) == ('LinearLR', False,
                                                          500)
    assert (steps.type, steps.milestones) == ('MultiStepLR', [8, 11])
    assert cfg.train_dataloader.batch_size == 2  # x 8 GPUs = 16
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=16)
    neck = cfg.model.neck
    assert (neck.type, neck.out_channels, neck.num_outs) == ('FPN', 256, 5)
    if retina:
        assert cfg.model.type == 'RetinaNet'
        assert (neck.start_level, neck.add_extra_convs) == (1, 'on_input')
        assert cfg.val_evaluator.metric == 'bbox'
    else:
        assert cfg.model.type == 'MaskRCNN'
        assert neck.get('start_level', 0) == 0
        assert not neck.get('add_extra_convs', False)
        assert cfg.val_evaluator.metric == ['bbox', 'segm']
    assert cfg.train_dataloader.dataset.type == 'CheckedCocoDataset'
    assert 'train2017' in cfg.train_dataloader.dataset.data_prefix.img


@pytest.mark.parametrize('name', SEGMENTATION)
def test_segmentation_recipe(name):
    cfg = load(name)
    assert cfg.model.type == 'EncoderDecoder' and cfg.model.pretrained is None
    assert cfg.model.data_preprocessor.size == (512, 512)
    neck, head = cfg.model.neck, cfg.model.decode_head
    assert (neck.type, neck.out_channels, neck.num_outs) == ('FPN', 256, 4)
    assert (head.type, head.channels, head.dropout_ratio,
            head.num_classes) == ('FPNHead', 128, 0.1, 150)
    assert head.norm_cfg.type == 'SyncBN'
    assert cfg.model.test_cfg.mode == 'whole'
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=1e-4,
                                               weight_decay=1e-4)
    (poly, ) = cfg.param_scheduler
    assert (poly.type, poly.power, poly.eta_min, poly.end,
            poly.by_epoch) == ('PolyLR', 0.9, 1e-6, 80000, False)
    assert cfg.train_cfg.max_iters == 80000
    assert cfg.train_dataloader.batch_size == 2  # x 8 GPUs = 16
    data = cfg.train_dataloader.dataset
    assert data.type == 'ADE20KDataset'
    steps = {t.type: t for t in data.pipeline}
    assert steps['RandomResize'].scale == (2048, 512)
    assert steps['RandomResize'].ratio_range == (0.5, 2.0)
    assert steps['RandomCrop'].crop_size == (512, 512)
    assert steps['RandomCrop'].cat_max_ratio == 0.75
    assert steps['RandomFlip'].prob == 0.5
    assert 'PhotoMetricDistortion' in steps
    test_steps = {t.type: t for t in cfg.test_dataloader.dataset.pipeline}
    assert test_steps['Resize'].scale == (2048, 512)
    assert cfg.test_evaluator.iou_metrics == ['mIoU']


def test_norm_layers_get_no_weight_decay():
    """What norm_decay_mult=0 matches in mmengine's optimizer constructor:
    every LayerNorm of LITv2 and the BatchNorm of its DTMs, nothing else."""
    from mmengine.optim import build_optim_wrapper
    from torch import nn

    from tests.tiny_data import TINY_BACKBONE, TINY_WIDTHS
    cfg = load('retinanet_litv2_s_w2')
    cfg.model.backbone.update(TINY_BACKBONE)
    cfg.model.neck.in_channels = TINY_WIDTHS
    model = build('tiny', cfg)
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg.type = 'OptimWrapper'  # AMP needs a GPU; same param groups
    optimizer = build_optim_wrapper(model, optim_cfg).optimizer
    decay = {id(p): g['weight_decay'] for g in optimizer.param_groups
             for p in g['params']}
    norms = (nn.LayerNorm, nn.BatchNorm2d)
    kinds = set()
    for module in model.modules():
        for p in module.parameters(recurse=False):
            is_norm = isinstance(module, norms)
            kinds.add(type(module).__name__ if is_norm else None)
            assert decay[id(p)] == (0.0 if is_norm else 1e-4), module
    assert {'LayerNorm', 'BatchNorm2d'} <= kinds


def _det_inputs(name):
    from mmdet.testing import demo_mm_inputs
    return demo_mm_inputs(batch_size=1, image_shapes=[(3, 64, 96)],
                          num_items=[2], num_classes=80,
                          with_mask=name.startswith('mask_rcnn'))


def _seg_inputs():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    sample = SegDataSample(metainfo=dict(img_shape=(64, 64),
                                         ori_shape=(64, 64),
                                         pad_shape=(64, 64)))
    labels = torch.randint(0, 150, (1, 64, 64))
    labels[:, :8] = 255  # some ignored pixels
    sample.gt_sem_seg = PixelData(data=labels)
    return dict(inputs=[torch.randint(0, 255, (3, 64, 64)).float()],
                data_samples=[sample])


@pytest.mark.parametrize('name', ALL)
def test_config_builds_and_trains_one_step(name):
    torch.manual_seed(0)
    cfg = load(name)
    if name in SEGMENTATION:  # training pads to the 512x512 crop size
        cfg.model.data_preprocessor.size = (64, 64)
    model = build(name, cfg)
    model.train()
    data = _seg_inputs() if name in SEGMENTATION else _det_inputs(name)
    data = model.data_preprocessor(data, True)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    backbone = model.backbone
    for param in (backbone.patch_embed.proj.weight,
                  backbone.layers[2].downsample.dconv.weight,
                  backbone.norm3.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0
    # HiLo of stage 3 (drop-path may skip single blocks in a step)
    hilo = [p.grad for blk in backbone.layers[2].blocks
            for p in blk.attn.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in hilo)


@pytest.mark.parametrize('name', ALL)
def test_parameter_counts_match_the_paper(name):
    if name not in PARAM_COUNTS:  # run alone: build it here
        build(name)
    millions = PARAM_COUNTS[name] / 1e6
    assert round(millions) == PAPER_PARAMS_M[name], f'{millions:.2f} M'
