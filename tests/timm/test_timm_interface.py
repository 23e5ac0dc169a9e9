"""The LITv2 classifiers as timm models: features_only, forward_intermediates
and pruning, the rest of timm's model interface, FX tracing and TorchScript
(the behaviours timm's own tests/test_models.py checks, here on tiny models
and compared with the reference algorithm), and the torch + timm only
install."""
import subprocess
import sys
import textwrap

import pytest
import timm
import torch
from timm.models import get_notrace_functions, get_notrace_modules
from torchvision.models.feature_extraction import (
    create_feature_extractor,
    get_graph_node_names,
)

import litv2
from litv2 import LITV2_ARCHS, LITv2Classifier, local_windows
from litv2.checkpoint import extract_backbone_state_dict, unwrap_state_dict
from litv2.paper_figures import CLASSIFIERS
from litv2.testing.reference import build_reference_backbone, randomize_
from litv2.timm_models import checkpoint_filter_fn
from tests.utils import TINY_ARCH, rel_err

pytestmark = pytest.mark.usefixtures('one_thread')

TINY_CHANNELS = [16, 32, 64, 128]


def tiny(**kwargs):
    """litv2_s with the tiny architecture and random (non-trivial) weights."""
    return randomize_(timm.create_model('litv2_s', **dict(TINY_ARCH,
                                                          **kwargs)))


def reference_stage_outputs(model, x):
    """The reference algorithm's stage outputs (before the output norms)
    with ``model``'s weights, as NCHW maps, and its last stage through
    ``model.norm``."""
    arch = dict(TINY_ARCH, local_ws=(0, 0, 2, 1))
    reference = build_reference_backbone(**arch, out_indices=(0, )).eval()
    state = {k: v for k, v in model.state_dict().items()
             if not k.startswith(('norm.', 'head.'))}
    reference.load_state_dict(state, strict=True)
    captured = []
    hooks = [stage.register_forward_hook(
        lambda m, args, out: captured.append(
            out.reshape(out.shape[0], args[1], args[2], -1)))
        for stage in reference.layers]
    with torch.no_grad():
        reference(x)
        normed = model.norm(captured[-1])
    for hook in hooks:
        hook.remove()
    return [c.permute(0, 3, 1, 2) for c in captured], normed


# the stage widths of LITv2-S
S_WIDTHS = [LITV2_ARCHS['s']['embed_dim'] * 2**i for i in range(4)]


def test_features_only_paper_model_feature_info():
    model = timm.create_model('litv2_s', features_only=True).eval()
    assert model.feature_info.channels() == S_WIDTHS
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    assert model.feature_info.module_name() == [f'layers.{i}'
                                                for i in range(4)]
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [
        (1, 96, 16, 24), (1, 192, 8, 12), (1, 384, 4, 6), (1, 768, 2, 3)]


def test_features_only_matches_reference_stages():
    """features_only gives each stage's output before its DTM (NCHW): the
    reference algorithm's stage outputs with the same weights. Odd input
    size: patch-embedding and HiLo padding, DTM's dropped row/column."""
    source = tiny().eval()
    features = timm.create_model('litv2_s', features_only=True,
                                 **TINY_ARCH).eval()
    features.load_state_dict(
        {f'model.{k}': v for k, v in source.state_dict().items()
         if not k.startswith('head.') and not k.startswith('norm.')},
        strict=True)
    x = torch.randn(2, 3, 70, 98, generator=torch.Generator().manual_seed(0))
    expected, _ = reference_stage_outputs(source, x)
    with torch.no_grad():
        outs = features(x)
    assert [o.shape[1] for o in outs] == TINY_CHANNELS
    assert features.feature_info.channels() == TINY_CHANNELS
    for out, ref in zip(outs, expected):
        assert out.shape == ref.shape
        assert rel_err(out, ref) < 1e-4


def test_features_only_out_indices_prunes():
    model = tiny(features_only=True, out_indices=(0, 1))
    assert model.feature_info.channels() == [16, 32]
    assert model.feature_info.reduction() == [4, 8]
    inner = model.model
    # later stages, the DTM after stage 1, the final norm and the head: gone
    assert len(inner.layers) == 2 and inner.layers[1].downsample is None
    assert isinstance(inner.norm, torch.nn.Identity)
    assert inner.num_classes == 0
    outs = model(torch.randn(2, 3, 32, 48))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 8, 12), (2, 32, 4, 6)]
    # every remaining parameter is used (no unused ones for DDP)
    sum(o.mean() for o in outs).backward()
    assert all(p.grad is not None for p in model.parameters())
    # negative indices count from the end
    last_two = tiny(features_only=True, out_indices=(-2, -1))
    assert last_two.feature_info.channels() == [64, 128]


def test_forward_intermediates():
    model = tiny().eval()
    x = torch.randn(2, 3, 70, 98, generator=torch.Generator().manual_seed(1))
    expected, normed = reference_stage_outputs(model, x)
    with torch.no_grad():
        final, inters = model.forward_intermediates(x)
        assert torch.equal(final, model.forward_features(x))
        for out, ref in zip(inters, expected):
            assert rel_err(out, ref) < 1e-4
        # norm: the final norm on the last stage's output
        inters = model.forward_intermediates(x, norm=True,
                                             intermediates_only=True)
        assert rel_err(inters[-1], normed.permute(0, 3, 1, 2)) < 1e-4
        assert rel_err(inters[0], expected[0]) < 1e-4
        # int: the last n; NHWC; stop_early
        inters = model.forward_intermediates(x, indices=2, output_fmt='NHWC',
                                             intermediates_only=True)
        assert [tuple(o.shape) for o in inters] == [(2, 4, 6, 64),
                                                    (2, 2, 3, 128)]
        final, inters = model.forward_intermediates(x, indices=[1],
                                                    stop_early=True)
        assert len(inters) == 1 and rel_err(inters[0], expected[1]) < 1e-4
        assert torch.equal(final, inters[0].permute(0, 2, 3, 1))
    with pytest.raises(ValueError, match='indices'):
        model.forward_intermediates(x, indices=[4])
    with pytest.raises(ValueError, match='indices'):
        model.forward_intermediates(x, indices=5)
    with pytest.raises(ValueError, match='output_fmt'):
        model.forward_intermediates(x, output_fmt='NLC')


def test_prune_intermediate_layers():
    model = tiny(num_classes=5).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model.forward_intermediates(x, intermediates_only=True)
    assert model.prune_intermediate_layers([-1], prune_head=False) == [3]
    assert model.num_classes == 5  # head kept, nothing else to prune
    assert model.prune_intermediate_layers((0, 2)) == [0, 2]
    assert len(model.layers) == 3 and model.layers[2].downsample is None
    assert model.num_classes == 0 and isinstance(model.norm, torch.nn.Identity)
    with torch.no_grad():
        after = model.forward_intermediates(x, indices=(0, 2),
                                            intermediates_only=True)
    assert torch.equal(after[0], before[0])
    assert torch.equal(after[1], before[2])


def test_default_cfg_conventions():
    """timm's test_model_default_cfgs, on the tiny model: unpooled features
    in the declared output_fmt (NHWC) with num_features channels, the pool
    size of the pretrained cfg at its input size, pre-logits width."""
    model = tiny().eval()
    assert model.output_fmt == 'NHWC'
    cfg = model.pretrained_cfg
    x = torch.randn(1, *cfg['input_size'])
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape[1:3] == cfg['pool_size']
        assert features.shape[3] == model.num_features == 128
        assert model.forward_head(features, pre_logits=True).shape == (
            1, model.head_hidden_size)
        model.reset_classifier(0)
        assert model(x).shape == (1, 128)
        model.reset_classifier(0, '')
        assert torch.equal(model(x), features)
    assert model.no_weight_decay() == set()
    assert f"{cfg['first_conv']}.weight" in model.state_dict()


def _fx_model(model, train=False):
    """What timm's tests do: trace with timm's leaf modules and autowrapped
    functions and return the last node."""
    kwargs = dict(leaf_modules=get_notrace_modules(),
                  autowrap_functions=get_notrace_functions(),
                  param_shapes_constant=True)
    train_nodes, eval_nodes = get_graph_node_names(model,
                                                   tracer_kwargs=kwargs)
    return create_feature_extractor(
        model, train_return_nodes=[train_nodes[-1]],
        eval_return_nodes=[eval_nodes[-1]], tracer_kwargs=kwargs)


def test_fx_trace_any_input_size():
    """The padding decisions are kept as calls in the graph, so one traced
    graph equals eager exactly at sizes that pad and sizes that do not."""
    model = tiny(num_classes=7).eval()
    fx_model = _fx_model(model)
    with torch.no_grad():
        for size in ((64, 64), (70, 98), (33, 41)):
            x = torch.randn(1, 3, *size)
            out = next(iter(fx_model(x).values()))
            assert torch.equal(out, model(x)), size
    scripted = torch.jit.script(fx_model)
    x = torch.randn(2, 3, 70, 98)
    with torch.no_grad():
        assert rel_err(next(iter(scripted(x).values())), model(x)) < 1e-5


def test_fx_backward():
    model = tiny(num_classes=7, drop_path_rate=0.1).train()
    fx_model = _fx_model(model, train=True)
    out = next(iter(fx_model(torch.randn(2, 3, 38, 45)).values()))
    assert out.shape == (2, 7)
    out.mean().backward()
    assert all(p.grad is not None for p in fx_model.parameters())


@pytest.mark.parametrize('alpha', [0.0, 0.5, 1.0])
def test_torchscript(alpha):
    """Scripted == eager, also with HiLo layers of only Hi-Fi (alpha 0) or
    only Lo-Fi heads (alpha 1), whose other branch does not exist."""
    model = tiny(num_classes=5, alpha=alpha).eval()
    scripted = torch.jit.script(model)
    x = torch.randn(2, 3, 70, 98)
    with torch.no_grad():
        assert rel_err(scripted(x), model(x)) < 1e-5


def test_grad_checkpointing_same_output_and_grads():
    model = tiny(num_classes=5, drop_path_rate=0.0)  # train mode, no noise
    x = torch.randn(2, 3, 32, 32)
    model(x).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    assert all(stage.use_checkpoint for stage in model.layers)
    model(x).sum().backward()
    for name, param in model.named_parameters():
        assert rel_err(param.grad, grads[name]) < 1e-5, name


def test_one_unwrapping_for_both_loaders():
    """The timm filter and the backbone loader read the same state dict out
    of every layout (one function, litv2.checkpoint.unwrap_state_dict)."""
    weights = {'layers.0.blocks.0.norm2.weight': torch.ones(2),
               'head.bias': torch.zeros(3)}
    for checkpoint in (dict(model=weights, epoch=1),
                       dict(state_dict=weights, args=None),
                       {f'module.{k}': v for k, v in weights.items()},
                       dict(state_dict=weights, model={'other': None}),
                       weights):
        assert unwrap_state_dict(checkpoint) == weights
        assert checkpoint_filter_fn(checkpoint) == weights
        backbone, dropped = extract_backbone_state_dict(checkpoint)
        assert dropped == ['head.bias']
        assert backbone == {'layers.0.blocks.0.norm2.weight': weights[
            'layers.0.blocks.0.norm2.weight']}


def test_timm_models_need_only_torch_and_timm():
    """With mmcv, mmengine, mmdet and mmseg unimportable, ``import litv2``
    registers the classifiers and they build, with features_only too."""
    code = textwrap.dedent('''
        import sys
        for name in ('mmcv', 'mmengine', 'mmdet', 'mmseg', 'mmpretrain'):
            sys.modules[name] = None  # any import of them fails
        import litv2
        import timm
        import torch
        model = timm.create_model('litv2_s', features_only=True)
        with torch.no_grad():
            outs = model(torch.zeros(1, 3, 64, 64))
        print([o.shape[1] for o in outs])
        print(sorted(timm.list_models('litv2*')))
        try:
            litv2.LITv2
        except AttributeError as err:
            print('litv2_openmmlab.LITv2' in str(err))
    ''')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out == [str(S_WIDTHS), str(sorted(CLASSIFIERS)),
                   'True']


def test_model_core_needs_only_torch():
    """Without timm (and OpenMMLab), litv2 imports and its models run."""
    code = textwrap.dedent('''
        import sys
        for name in ('timm', 'mmcv', 'mmengine', 'mmdet', 'mmseg'):
            sys.modules[name] = None
        import torch
        import litv2
        print(litv2.register_timm_models())
        arch = dict(embed_dim=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 4))
        model = litv2.LITv2Classifier(num_classes=3, **arch).eval()
        backbone = litv2.LITv2Backbone(out_indices=(1, 3), **arch).eval()
        with torch.no_grad():
            print(tuple(model(torch.zeros(1, 3, 40, 40)).shape),
                  [o.shape[1] for o in backbone(torch.zeros(1, 3, 40, 40))])
    ''')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out == ['False', '(1, 3) [16, 64]']


def test_import_litv2_does_nothing_else():
    """``import litv2`` registers the timm models and imports nothing of
    OpenMMLab or of the OpenMMLab adapter (whose plugins register mmengine
    hooks and swap its checkpoint loader);
    tests/openmmlab/test_import_effects.py checks what the adapter's imports
    do."""
    code = textwrap.dedent('''
        import sys
        import litv2
        import timm
        assert 'litv2_s' in timm.list_models('litv2*')
        print(sorted(m for m in ('mmcv', 'mmengine', 'mmdet', 'mmseg',
                                 'litv2_openmmlab')
                     if m in sys.modules))
        print(hasattr(litv2, 'LITv2'))
    ''')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out == ['[]', 'False']


def test_paper_arch_classifier_builds_from_archs():
    """The registered variants are LITV2_ARCHS with HiLo window 2."""
    model = timm.create_model('litv2_m', features_only=True)
    inner = model.model
    assert isinstance(inner, LITv2Classifier)
    assert inner.depths == list(LITV2_ARCHS['m']['depths'])
    assert inner.local_ws == list(local_windows(2))
    assert litv2.register_timm_models() is True


def test_group_matcher_depth_order():
    """Layer-wise lr decay groups in depth order: a stage's DTM after its
    blocks (with the last one), the final norm with the last block."""
    from timm.models._manipulate import group_with_matcher
    model = tiny()
    groups = group_with_matcher(model.named_parameters(),
                                model.group_matcher())
    group_of = {name: gid for gid, names in groups.items() for name in names}
    assert group_of['layers.0.downsample.dconv.weight'] == group_of[
        'layers.0.blocks.0.mlp.fc1.weight'] < group_of[
            'layers.1.blocks.0.mlp.fc1.weight']
    assert group_of['layers.2.blocks.0.attn.l_q.weight'] < group_of[
        'layers.2.downsample.norm_layer.weight'] == group_of[
            'layers.2.blocks.1.attn.l_q.weight']
    assert group_of['norm.weight'] == group_of[
        'layers.3.blocks.0.norm2.weight']
    coarse = group_with_matcher(model.named_parameters(),
                                model.group_matcher(coarse=True))
    assert len(coarse) == 6  # stem, four stages, head


def test_features_only_loads_released_layout(tmp_path):
    """features_only=True with pretrained weights: the file (reference
    layout, {'model': ...}) loads strictly into the classifier before it is
    wrapped and pruned."""
    source = tiny().eval()
    path = tmp_path / 'litv2_tiny.pth'
    torch.save(dict(model=source.state_dict(), epoch=299), path)
    features = timm.create_model(
        'litv2_s', features_only=True, out_indices=(1, 2), pretrained=True,
        pretrained_cfg_overlay=dict(file=str(path)), **TINY_ARCH).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = source.forward_intermediates(x, indices=(1, 2),
                                                intermediates_only=True)
        for out, ref in zip(features(x), expected):
            assert torch.equal(out, ref)
