"""LITv2 backbone: outputs, freezing, checkpointing, arguments, registries."""
import itertools
import warnings

import pytest
import torch

from litv2 import LITV2_ARCHS, local_windows
from litv2.paper_figures import CLASSIFIERS
from litv2_openmmlab import LITv2
from tests.utils import TINY_ARCH, rel_err, tiny_kwargs


@pytest.mark.parametrize('arch', ['s', 'm', 'b'])
@pytest.mark.parametrize('size', [(64, 64), (97, 131), (32, 200)])
def test_output_shapes_strides_channels(arch, size):
    model = LITv2(**LITV2_ARCHS[arch], local_ws=local_windows(2)).eval()
    h, w = size
    with torch.no_grad():
        outs = model(torch.randn(2, 3, h, w))
    width = LITV2_ARCHS[arch]['embed_dim']
    hs, ws = -(-h // 4), -(-w // 4)  # patch embedding pads up to 4
    assert len(outs) == 4
    for i, out in enumerate(outs):
        assert out.shape == (2, width * 2**i, hs, ws)
        assert out.is_contiguous() and torch.isfinite(out).all()
        hs, ws = hs // 2, ws // 2  # DTM drops an odd last row/column


def test_paper_parameter_count_of_backbones():
    # Backbone + the classifier's final norm and 1000-way head gives the
    # paper's Params (M) of the classifiers (the output norms norm1-3 are
    # detection-only).
    for arch in LITV2_ARCHS:
        paper = CLASSIFIERS[f'litv2_{arch}'].params_m
        model = LITv2(**LITV2_ARCHS[arch], out_indices=(0, ))
        width = model.num_features[-1]
        n = sum(p.numel() for p in model.parameters())
        n += 2 * width + width * 1000 + 1000
        assert round(n / 1e6) == paper, arch


def test_out_indices_select_outputs_and_norms():
    model = LITv2(**tiny_kwargs(out_indices=(1, 3))).eval()
    keys = model.state_dict().keys()
    assert {k.split('.')[0] for k in keys if k.startswith('norm')} == \
        {'norm1', 'norm3'}
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 128]


ALL_OUT_INDICES = [subset for r in range(1, 5)
                   for subset in itertools.combinations(range(4), r)]


def _check_out_indices(model, subset, size=64):
    """Forward and backward with ``subset``: the widths and strides asked
    for, a gradient for every trainable parameter, none asked of what the
    forward pass does not reach."""
    outs = model(torch.randn(2, 3, size, size))
    width = model.embed_dim
    assert [(o.shape[1], o.shape[2]) for o in outs] == \
        [(width * 2**i, size // 4 // 2**i) for i in subset], subset
    sum(o.float().pow(2).mean() for o in outs).backward()
    last = max(subset)
    unused = [f'layers.{i}.' for i in range(last + 1, 4)]
    if last < 3:
        unused.append(f'layers.{last}.downsample.')
    for name, p in model.named_parameters():
        reached = not any(name.startswith(u) for u in unused)
        assert p.requires_grad == reached, (subset, name)
        if reached:
            assert p.grad is not None, (subset, name)


@pytest.mark.parametrize('subset', ALL_OUT_INDICES, ids=str)
def test_every_out_indices_runs_forward_and_backward(subset):
    # (0, 1, 2), (1, 2) and (0, ) used to run the last stage on the
    # undownsampled map: "normalized_shape=[768] ... size[1, 14, 14, 384]".
    model = LITv2(**tiny_kwargs(out_indices=subset)).train()
    _check_out_indices(model, subset)


def test_every_out_indices_of_litv2_s():
    for subset in ALL_OUT_INDICES:
        model = LITv2(**LITV2_ARCHS['s'], local_ws=local_windows(2),
                      out_indices=subset, drop_path_rate=0.0).train()
        _check_out_indices(model, subset, size=32)


def test_backbone_stops_after_the_last_stage_asked_for():
    model = LITv2(**tiny_kwargs(out_indices=(0, 1))).eval()
    ran = []
    for i, stage in enumerate(model.layers):
        stage.register_forward_hook(lambda *_, i=i: ran.append(i))
    model(torch.randn(1, 3, 64, 64))
    assert ran == [0, 1]


def test_frozen_stages():
    model = LITv2(**tiny_kwargs(frozen_stages=2))
    model.train()
    frozen = ['patch_embed.', 'layers.0.', 'layers.1.', 'norm1.']
    for name, p in model.named_parameters():
        assert p.requires_grad != any(name.startswith(f) for f in frozen), name
    assert not model.layers[1].downsample.norm_layer.training
    assert model.layers[2].downsample.norm_layer.training
    # A training step leaves frozen BN statistics untouched.
    before = model.layers[0].downsample.norm_layer.running_mean.clone()
    model(torch.randn(2, 3, 64, 64))[-1].sum().backward()
    assert torch.equal(before,
                       model.layers[0].downsample.norm_layer.running_mean)
    assert all(p.grad is None for n, p in model.named_parameters()
               if n.startswith('layers.0.'))
    assert model.train() is model and model.eval() is model


def test_frozen_stages_zero_freezes_patch_embedding_only():
    model = LITv2(**tiny_kwargs(frozen_stages=0))
    trainable = {n.split('.')[0] for n, p in model.named_parameters()
                 if p.requires_grad}
    assert 'patch_embed' not in trainable and 'layers' in trainable


def test_gradient_checkpointing_same_outputs_and_gradients():
    kwargs = tiny_kwargs()
    plain, ckpt = LITv2(**kwargs), LITv2(**kwargs, use_checkpoint=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 70, 90)
    results = []
    for model in (plain, ckpt):
        model.train()
        outs = model(x)
        sum(o.square().mean() for o in outs).backward()
        results.append(
            (outs, {n: p.grad for n, p in model.named_parameters()}))
    (outs_a, grads_a), (outs_b, grads_b) = results
    for a, b in zip(outs_a, outs_b):
        assert rel_err(b, a) < 1e-6
    for name, grad in grads_a.items():
        assert grads_b[name] is not None, name
        assert rel_err(grads_b[name], grad) < 1e-5, name


def test_backward_reaches_every_parameter():
    model = LITv2(**tiny_kwargs(drop_path_rate=0.1, drop_rate=0.1,
                                attn_drop_rate=0.1)).train()
    outs = model(torch.randn(2, 3, 45, 61))
    sum(o.mean() for o in outs).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_drop_path_grows_linearly():
    model = LITv2(**tiny_kwargs(drop_path_rate=0.4))
    rates = [getattr(b.drop_path, 'drop_prob', 0.0)
             for stage in model.layers for b in stage.blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_attention_free_stages_have_no_attention():
    model = LITv2(**tiny_kwargs(local_ws=(0, 0, 4, 1)))
    assert not hasattr(model.layers[0].blocks[0], 'attn')
    assert model.layers[2].blocks[0].attn.window_size == 4
    assert model.layers[3].blocks[0].attn.hifi_heads == 0


@pytest.mark.parametrize('overrides,word', [
    (dict(alpha=1.2), 'alpha'),
    (dict(alpha=-0.5), 'alpha'),
    (dict(num_heads=(1, 2, 3, 8)), r'num_heads\[2\]'),
    (dict(embed_dim=10, num_heads=(1, 2, 4, 7)), r'num_heads\[3\]'),
    (dict(local_ws=(0, 0, 2)), 'local_ws'),
    (dict(depths=(1, 1, 2)), 'depths'),
    (dict(num_heads=(1, 2, 4)), 'num_heads'),
    (dict(out_indices=(0, 4)), 'out_indices'),
    (dict(out_indices=(-1, )), 'out_indices'),
    (dict(local_ws=(0, 0, -1, 1)), r'local_ws\[2\]'),
    (dict(has_msa=(0, 0, 1, 0)), r'has_msa\[3\]'),
    (dict(has_msa=(0, 0, 1)), 'has_msa'),
    (dict(frozen_stages=5), 'frozen_stages'),
    (dict(depths=(1, 0, 2, 1)), r'depths\[1\]'),
    (dict(drop_path_rate=1.0), 'drop_path_rate'),
    (dict(ape=True), 'ape'),
])
def test_invalid_arguments_raise_value_error(overrides, word):
    with pytest.raises(ValueError, match=word):
        LITv2(**tiny_kwargs(**overrides))


def test_reference_config_dicts_are_accepted():
    """The backbone dicts of the reference's configs build unchanged."""
    # Deliberately a copy: LITv2-S's backbone dict as the reference's
    # detection configs write it (an independent source, not LITV2_ARCHS).
    reference_dict = dict(
        embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
        window_size=7, mlp_ratio=4., qkv_bias=True, qk_scale=None,
        drop_rate=0., attn_drop_rate=0., drop_path_rate=0.2, ape=False,
        patch_norm=True, out_indices=(0, 1, 2, 3), use_checkpoint=False,
        alpha=0.9, local_ws=[0, 0, 2, 1], has_msa=[0, 0, 1, 1],
        frozen_stages=-1)
    with pytest.warns(UserWarning, match='window_size=7 is ignored'):
        model = LITv2(**reference_dict)
    assert model.local_ws == [0, 0, 2, 1]
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        LITv2(**tiny_kwargs())  # no warning without window_size


def test_patch_norm_off():
    model = LITv2(**tiny_kwargs(patch_norm=False)).eval()
    assert model.patch_embed.norm is None
    assert model(torch.randn(1, 3, 32, 32))[0].shape == (1, 16, 8, 8)


@pytest.mark.parametrize('patch_norm', [True, False])
def test_patch_embedding_same_tokens_in_inference_and_training(patch_norm):
    """Without autograd the image goes to the conv channels-last (tokens
    written in place); the tokens equal those of the NCHW path to float32
    rounding (the conv sums its 48 products in another order) and come out
    contiguous either way."""
    embed = LITv2(**tiny_kwargs(patch_norm=patch_norm)).patch_embed
    x = torch.randn(2, 3, 30, 45)
    with torch.no_grad():
        fast = embed(x)
    slow = embed(x)
    assert fast.shape == slow.shape == (2, 8, 12, 16)
    assert fast.is_contiguous() and slow.is_contiguous()
    assert rel_err(fast, slow.detach()) < 1e-6


def test_registered_in_mmdet_and_mmseg():
    from mmdet.registry import MODELS as DET_MODELS
    from mmseg.registry import MODELS as SEG_MODELS

    import mmdet_litv2  # noqa: F401
    import mmseg_litv2  # noqa: F401
    assert DET_MODELS.get('LITv2') is LITv2
    assert SEG_MODELS.get('LITv2') is LITv2
    det = DET_MODELS.build(dict(type='LITv2', **tiny_kwargs()))
    seg = SEG_MODELS.build(dict(type='LITv2', **tiny_kwargs()))
    assert isinstance(det, LITv2) and isinstance(seg, LITv2)


def test_custom_imports_in_a_config(tmp_path):
    from mmengine.config import Config
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(
        "custom_imports = dict(imports=['mmdet_litv2'], "
        "allow_failed_imports=False)\n"
        "model = dict(type='LITv2', embed_dim=16, depths=[1, 1, 1, 1], "
        "num_heads=[1, 2, 4, 8], local_ws=[0, 0, 4, 1], alpha=0.5)\n")
    cfg = Config.fromfile(str(cfg_file))
    from mmdet.registry import MODELS
    model = MODELS.build(cfg.model)
    assert model.layers[2].blocks[0].attn.window_size == 4


def test_residual_stream_gradient_stays_token_contiguous():
    # The NCHW outputs and DTM's grid_sample hand back NCHW-strided
    # gradients; each stage makes them (B, H, W, C)-contiguous again so the
    # linear layers' backward does not copy them first.
    model = LITv2(**tiny_kwargs(out_indices=(0, 1, 2, 3))).train()
    layouts = []
    for block in (b for stage in model.layers for b in stage.blocks):
        block.mlp.fc2.register_full_backward_hook(
            lambda m, grad_in, grad_out: layouts.append(
                grad_out[0].is_contiguous()))
    sum(o.square().sum() for o in model(torch.randn(2, 3, 64, 64))).backward()
    assert len(layouts) == sum(TINY_ARCH['depths']) and all(layouts)
