"""The backbone equals the reference algorithm, weight for weight."""
import pytest
import torch

from tests.utils import paired_models, rel_err


@pytest.mark.parametrize('arch,window,size', [
    ('s', 2, (333, 517)),
    ('s', 4, (333, 517)),
    ('m', 2, (131, 197)),
    ('m', 4, (131, 197)),
    ('b', 2, (98, 165)),
    ('b', 4, (98, 165)),
])
def test_features_equal_reference(arch, window, size):
    reference, model = paired_models(arch, window, seed='smb'.index(arch))
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(x)
        actual = model(x)
    assert len(actual) == len(expected) == 4
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        assert rel_err(a, e) < 1e-4


def test_alpha_extremes_equal_reference():
    for alpha in (0.0, 1.0, 0.5):
        reference, model = paired_models('s', 2, alpha=alpha)
        x = torch.randn(1, 3, 75, 93)
        with torch.no_grad():
            for a, e in zip(model(x), reference(x)):
                assert rel_err(a, e) < 1e-4


def test_out_indices_subset_equal_reference():
    reference, model = paired_models('s', 4, out_indices=(1, 3))
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        actual, expected = model(x), reference(x)
    assert [t.shape[1] for t in actual] == [192, 768]
    for a, e in zip(actual, expected):
        assert rel_err(a, e) < 1e-4


@pytest.mark.parametrize('window', [2, 4])
def test_gradients_equal_reference(window):
    """Training-mode backward: input and parameter gradients match."""
    reference, model = paired_models('s', window, seed=window)
    reference.train()
    model.train()
    grads = {}
    for name, net in (('reference', reference), ('model', model)):
        x = torch.randn(2, 3, 70, 101,
                        generator=torch.Generator().manual_seed(2),
                        requires_grad=True)
        sum(o.square().mean() for o in net(x)).backward()
        grads[name] = dict(net.named_parameters(), input=x)
    expected, actual = grads['reference'], grads['model']
    assert expected.keys() == actual.keys()
    # Relative to the largest gradient: the biases feeding a train-mode
    # BatchNorm have an exactly-zero gradient, i.e. pure rounding noise.
    scale = max(p.grad.abs().max() for p in expected.values())
    for key, param in actual.items():
        assert param.grad is not None, key
        diff = (param.grad - expected[key].grad).abs().max() / scale
        assert diff < 1e-4, (key, diff.item())


def test_baseline_backbone_for_fps_builds_from_litv2_config():
    """litv2_openmmlab/testing/reference_backbone.py: the baseline registered
    for tools/fps.py takes LITv2's config and holds LITv2's initial weights."""
    from mmdet.registry import MODELS

    import litv2_openmmlab.testing.reference_backbone  # noqa: F401
    import mmdet_litv2  # noqa: F401
    from tests.utils import tiny_kwargs
    cfg = dict(tiny_kwargs(), drop_path_rate=0.1, out_indices=(1, 2, 3))
    torch.manual_seed(0)
    baseline = MODELS.build(dict(type='ReferenceLITv2Backbone', **cfg)).eval()
    torch.manual_seed(0)
    project = MODELS.build(dict(type='LITv2', **cfg)).eval()
    x = torch.randn(1, 3, 45, 70)
    with torch.no_grad():
        for a, e in zip(project(x), baseline(x)):
            assert rel_err(a, e) < 1e-5
    with pytest.raises(RuntimeError, match='inference'):
        baseline.train()
