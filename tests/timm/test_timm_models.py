"""The ImageNet classifiers in timm: registration, the reference's weights
layout, timm's loading path and interface, and the shared layout with the
detection backbone."""
import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

import mmdet_litv2  # noqa: F401,E402  (LITv2 in mmdet's registry)
from litv2 import LITV2_ARCHS, LITv2Classifier, local_windows
from litv2.checkpoint import CheckpointMismatchError
from litv2.paper_figures import CLASSIFIERS, RELEASE_URL
from litv2.testing.reference import build_reference_backbone, randomize_
from litv2.timm_models import _MODELS, checkpoint_filter_fn
from litv2_openmmlab.flops import count_flops
from tests.utils import TINY_ARCH, rel_err, tiny_kwargs

# The paper's classifiers, each registered in timm under its name.
NAMES = tuple(CLASSIFIERS)
ARCH_OF = {name: c.variant.lower() for name, c in CLASSIFIERS.items()}
# The paper's table: Params (M), rounded as shown there, and FLOPs (G).
PAPER_PARAMS_M = {name: c.params_m for name, c in CLASSIFIERS.items()}
PAPER_GFLOPS = {name: c.flops_g for name, c in CLASSIFIERS.items()}


pytestmark = pytest.mark.usefixtures('one_thread')


def reference_classifier_state(arch_kwargs, num_classes=1000, seed=0):
    """A state dict in the layout of the reference's ImageNet checkpoints:
    the reference backbone's keys (no output norms norm1..3) plus the
    classifier's ``norm`` and ``head``, random values."""
    reference = randomize_(
        build_reference_backbone(**arch_kwargs, out_indices=(0, )), seed)
    state = dict(reference.state_dict())
    width = arch_kwargs['embed_dim'] * 2**(len(arch_kwargs['depths']) - 1)
    gen = torch.Generator().manual_seed(seed + 1)
    state['norm.weight'] = 1 + 0.1 * torch.randn(width, generator=gen)
    state['norm.bias'] = 0.1 * torch.randn(width, generator=gen)
    state['head.weight'] = torch.randn(num_classes, width, generator=gen) / 8
    state['head.bias'] = 0.1 * torch.randn(num_classes, generator=gen)
    return state


def test_registered_on_plugin_import():
    """``import litv2`` registers them (the plugins import litv2)."""
    assert set(NAMES) <= set(timm.list_models('litv2*'))
    for name in NAMES:
        assert timm.is_model_pretrained(name)
    # mmseg's plugin alone (fresh interpreter) registers them as well.
    code = ('import mmseg_litv2, timm; '
            'print(sorted(timm.list_models("litv2*")))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == str(sorted(NAMES))


@pytest.fixture(scope='module')
def paper_models():
    """litv2_s, litv2_m, litv2_b (litv2_b_384 is the same network as litv2_b,
    checked in test_pretrained_cfgs; building it again costs seconds)."""
    torch.manual_seed(0)
    return {name: timm.create_model(name).eval() for name in NAMES[:3]}


def test_params_and_layout_match_the_paper_and_the_reference(paper_models):
    for name, model in paper_models.items():
        params = sum(p.numel() for p in model.parameters())
        assert round(params / 1e6) == PAPER_PARAMS_M[name], (name, params)
        arch = dict(LITV2_ARCHS[ARCH_OF[name]], alpha=0.9,
                    local_ws=local_windows(2))
        reference = build_reference_backbone(**arch, out_indices=(0, ))
        expected = {k: tuple(v.shape)
                    for k, v in reference.state_dict().items()}
        width = model.num_features
        expected.update({'norm.weight': (width, ), 'norm.bias': (width, ),
                         'head.weight': (1000, width), 'head.bias': (1000, )})
        got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert got == expected, name
        # no detection output norms in the classifier
        assert not any(k.startswith(('norm1.', 'norm2.', 'norm3.'))
                       for k in got)


def test_flops_match_the_paper(paper_models):
    """The classification table's FLOPs are the reference classifier's own
    analytic count, which includes DTM's deformable convolution (as an
    ordinary 2x2 conv): ``FlopCount.complete``. Within 2% of the paper."""
    for name in NAMES:
        model = paper_models['litv2_b' if name == 'litv2_b_384' else name]
        size = 384 if name == 'litv2_b_384' else 224
        with torch.no_grad():
            count = count_flops(model, (torch.zeros(1, 3, size, size), ))
        gflops = count.complete / 1e9
        assert abs(gflops / PAPER_GFLOPS[name] - 1) < 0.02, (name, gflops)
        # HiLo's attention products are counted (SDPA rule), nothing else
        # that does arithmetic of the paper's count is missing
        assert 'aten::scaled_dot_product_attention' not in count.unsupported
        assert count.complete > count.paper  # the deformable products


def test_pretrained_cfgs():
    assert _MODELS['litv2_b_384'] == _MODELS['litv2_b']
    expected_dpr = dict(litv2_s=0.2, litv2_m=0.3, litv2_b=0.5,
                        litv2_b_384=0.5)
    for name in NAMES:
        cfg = timm.models.get_pretrained_cfg(name).to_dict()
        size = CLASSIFIERS[name].resolution
        assert cfg['url'] == RELEASE_URL + CLASSIFIERS[name].weights
        assert cfg['input_size'] == (3, size, size)
        assert cfg['crop_pct'] == (1.0 if size == 384 else 0.875)
        assert cfg['interpolation'] == 'bicubic'
        assert cfg['num_classes'] == 1000
        assert cfg['first_conv'] == 'patch_embed.proj'
        assert cfg['classifier'] == 'head'
        # pretrained=True downloads from the release; a file overrides it
        source = timm.models._builder._resolve_pretrained_source
        assert source(cfg) == (
            'url', cfg['url'])
        # the architecture can be overridden; drop path is kept
        model = timm.create_model(name, **TINY_ARCH)
        blocks = [b for stage in model.layers for b in stage.blocks]
        assert blocks[-1].drop_path.drop_prob == pytest.approx(
            expected_dpr[name])


def test_released_layout_loads_through_timm_and_matches_reference(tmp_path):
    arch = dict(TINY_ARCH, local_ws=(0, 0, 2, 1))
    state = reference_classifier_state(arch)
    # the released files: {'model': ...} with training state beside it
    path = tmp_path / 'litv2_tiny.pth'
    torch.save(dict(model=state, epoch=299, max_accuracy=82.0), path)
    # timm loads strictly: any missing or unexpected key would raise.
    model = timm.create_model('litv2_s', pretrained=True, **TINY_ARCH,
                              pretrained_cfg_overlay=dict(file=str(path)))
    model.eval()
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value), key

    # Logits equal the reference backbone's last stage -> norm -> mean -> head
    reference = build_reference_backbone(**arch, out_indices=(3, ))
    ref_state = {k: v for k, v in state.items()
                 if not k.startswith(('norm.', 'head.'))}
    ref_state.update({'norm3.weight': state['norm.weight'],
                      'norm3.bias': state['norm.bias']})
    reference.load_state_dict(ref_state, strict=True)
    x = torch.randn(2, 3, 75, 94, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        pooled = reference.eval()(x)[0].mean(dim=(2, 3))
        expected = pooled @ state['head.weight'].T + state['head.bias']
        assert rel_err(model(x), expected) < 1e-4
        assert rel_err(model.forward_head(model.forward_features(x),
                                          pre_logits=True), pooled) < 1e-4

    # another number of classes: the head starts fresh, the rest is loaded
    model10 = timm.create_model('litv2_s', pretrained=True, num_classes=10,
                                **TINY_ARCH,
                                pretrained_cfg_overlay=dict(file=str(path)))
    assert model10.get_classifier().out_features == 10
    assert torch.equal(model10.norm.weight, state['norm.weight'])

    # a file of another architecture is refused, naming the keys
    torch.save(dict(model=reference_classifier_state(
        dict(arch, embed_dim=8))), tmp_path / 'other.pth')
    with pytest.raises(CheckpointMismatchError,
                       match=r"checkpoint '.*other.pth' does not fit the "
                       r'model: 99 of another shape \(patch_embed.proj.weight'
                       r': file \(8, 3, 4, 4\) vs model \(16, 3, 4, 4\)'):
        timm.create_model('litv2_s', pretrained=True, **TINY_ARCH,
                          pretrained_cfg_overlay=dict(
                              file=str(tmp_path / 'other.pth')))


def test_checkpoint_filter_fn_unwraps():
    weights = {'head.bias': torch.zeros(2)}
    assert checkpoint_filter_fn(dict(model=weights, epoch=3)) == weights
    assert checkpoint_filter_fn({'module.head.bias': weights['head.bias']}
                                ).keys() == weights.keys()
    assert checkpoint_filter_fn(weights) == weights
    # with the model: keys other than the head's must all be there
    model = timm.create_model('litv2_s', num_classes=3, **TINY_ARCH)
    state = {k: v for k, v in model.state_dict().items()
             if not k.startswith('head.')}
    assert checkpoint_filter_fn(dict(model=state), model).keys() == \
        state.keys()
    state.pop('norm.bias')
    state['norm3.weight'] = state['norm.weight']
    with pytest.raises(CheckpointMismatchError,
                       match=r'1 missing from the file \(norm.bias\); 1 not '
                       r'in the model \(norm3.weight\)'):
        checkpoint_filter_fn(state, model)


def test_timm_interface():
    model = timm.create_model('litv2_s', num_classes=7, **TINY_ARCH).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 2, 3, 128)
        assert model(x).shape == (2, 7)
        pooled = model.forward_head(features, pre_logits=True)
        assert pooled.shape == (2, 128)
        model.reset_classifier(0)
        assert torch.equal(model(x), pooled)
        model.reset_classifier(0, global_pool='')
        assert torch.equal(model(x), features)
        model.reset_classifier(5, global_pool='avg')
        assert model(x).shape == (2, 5)
    assert model.get_classifier() is model.head
    # layer-wise lr decay groups (timm's optimizer factory) cover every
    # parameter (the head's may stay outside them)
    groups = timm.models.group_parameters(model, model.group_matcher())
    grouped = {name for names in groups.values() for name in names}
    assert grouped | {'head.weight', 'head.bias'} == {
        name for name, _ in model.named_parameters()}
    from timm.optim import create_optimizer_v2
    assert create_optimizer_v2(model, 'adamw', lr=1e-3,
                               layer_decay=0.9)
    assert model.default_cfg['architecture'] == 'litv2_s'
    with torch.no_grad():
        no_head = timm.create_model('litv2_s', num_classes=0,
                                    **TINY_ARCH).eval()
        assert no_head(x).shape == (2, 128)
    model.train()
    model.set_grad_checkpointing(True)
    assert all(stage.use_checkpoint for stage in model.layers)
    model(x).sum().backward()
    assert model.patch_embed.proj.weight.grad is not None
    with pytest.raises(ValueError, match='global_pool'):
        timm.create_model('litv2_s', global_pool='max', **TINY_ARCH)
    with pytest.raises(ValueError, match='num_classes'):
        model.reset_classifier(-1)
    with pytest.raises(ValueError, match='out_indices'):
        LITv2Classifier(out_indices=(3, ), **TINY_ARCH)


def test_timm_checkpoint_initialises_detection_backbone(tmp_path):
    """What timm's train.py writes (state_dict, optimizer, argparse args)
    initialises the mmdet backbone: every backbone weight comes from it;
    only the detection output norms start fresh."""
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    classifier = timm.create_model('litv2_s', **TINY_ARCH)
    randomize_(classifier)
    optimizer = torch.optim.AdamW(classifier.parameters())
    path = tmp_path / 'model_best.pth.tar'
    torch.save(dict(epoch=3, arch='litv2_s',
                    state_dict=classifier.state_dict(),
                    optimizer=optimizer.state_dict(), version=2,
                    args=argparse.Namespace(model='litv2_s', lr=5e-4),
                    metric=12.5), path)
    # (the scope: an earlier test may have left another default scope)
    with DefaultScope.overwrite_default_scope('mmdet'):
        backbone = MODELS.build(dict(
            type='LITv2', **tiny_kwargs(alpha=0.5),
            init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    backbone.init_weights()
    own = backbone.state_dict()
    source = classifier.state_dict()
    fresh = {k for k in own if k.startswith(('norm1.', 'norm2.', 'norm3.'))}
    assert fresh and all(torch.equal(own[k], source[k])
                         for k in own if k not in fresh)
    # and the same through mmseg
    from mmseg.registry import MODELS as SEG_MODELS

    import mmseg_litv2  # noqa: F401
    with DefaultScope.overwrite_default_scope('mmseg'):
        seg = SEG_MODELS.build(dict(
            type='LITv2', **tiny_kwargs(alpha=0.5), out_indices=(3, ),
            init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    seg.init_weights()
    assert torch.equal(seg.layers[3].blocks[0].attn.l_q.weight,
                       classifier.layers[3].blocks[0].attn.l_q.weight)


def test_timm_scripts_see_the_models(tmp_path):
    """tools/timm_run.py runs a script (as timm's train.py / validate.py are
    run) with the models registered and the script's own arguments."""
    script = tmp_path / 'fake_validate.py'
    result = tmp_path / 'classes.txt'
    script.write_text(
        'import sys, timm\n'
        'model = timm.create_model(sys.argv[1], num_classes=int(sys.argv[2]),'
        ' embed_dim=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8))\n'
        f'open({str(result)!r}, "w").write(str(model.num_classes))\n')
    tool = Path(__file__).resolve().parents[2] / 'tools' / 'timm_run.py'
    subprocess.run([sys.executable, str(tool), str(script), 'litv2_m', '7'],
                   check=True)
    assert result.read_text() == '7'
