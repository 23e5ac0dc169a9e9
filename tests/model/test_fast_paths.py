"""The one switch of the inference fast paths (``litv2.fast_paths``): on by
default, off through ``set_fast_paths`` / ``using_fast_paths`` /
``LITV2_FAST_PATHS=0``. Off, no fast path runs and the model computes with
the plain ops: in ``no_grad`` it gives, bit for bit, what it gives in grad
mode (where no fast path applies). On, the same values to rounding.

Each path's own values are tested beside it: ``test_onednn.py`` (oneDNN
linear), ``test_convffn.py`` (the FFN half in pieces)."""
import os
import subprocess
import sys

import pytest
import torch

from litv2 import (
    LITv2Backbone,
    LITv2Classifier,
    fast_paths,
    set_fast_paths,
    use_fast_paths,
    using_fast_paths,
)
from litv2.testing.reference import randomize_
from tests.utils import rel_err, tiny_kwargs

pytestmark = pytest.mark.usefixtures('one_thread')


def _run(code, value):
    env = {k: v for k, v in os.environ.items() if k != 'LITV2_FAST_PATHS'}
    if value is not None:
        env['LITV2_FAST_PATHS'] = value
    return subprocess.run([sys.executable, '-c', code], env=env,
                          capture_output=True, text=True)


@pytest.mark.parametrize('value,expected', [(None, True), ('1', True),
                                            ('0', False), (' 0 ', False)])
def test_environment_value_is_read(value, expected, monkeypatch):
    if value is None:
        monkeypatch.delenv('LITV2_FAST_PATHS', raising=False)
    else:
        monkeypatch.setenv('LITV2_FAST_PATHS', value)
    assert fast_paths._from_environment() is expected


def test_environment_sets_the_start():
    """Read once, when litv2 is imported (a fresh interpreter)."""
    out = _run('import litv2; print(litv2.use_fast_paths())', '0')
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['False']


def test_environment_value_refused_naming_the_variable():
    out = _run('import litv2', 'yes')
    assert out.returncode != 0
    assert ("ValueError: LITV2_FAST_PATHS must be 0 (fast paths off) or 1 "
            "(on), got 'yes'") in out.stderr


def test_set_and_with_block():
    assert use_fast_paths()
    with pytest.raises(ValueError, match=r'^enable must be True or False, '
                       r'got 0$'):
        set_fast_paths(0)
    with using_fast_paths(False):
        assert not use_fast_paths()
        with using_fast_paths(True):
            assert use_fast_paths()
        assert not use_fast_paths()
    assert use_fast_paths()
    with pytest.raises(RuntimeError):
        with using_fast_paths(False):
            raise RuntimeError
    assert use_fast_paths()  # restored after an exception too
    set_fast_paths(False)
    try:
        assert not use_fast_paths()
    finally:
        set_fast_paths(True)


def _backbone(dtype=torch.float32):
    model = LITv2Backbone(**tiny_kwargs(), out_indices=(0, 1, 2, 3))
    return randomize_(model, seed=0).to(dtype).eval()


def _watch(model, monkeypatch):
    """Record which fast paths a forward pass takes."""
    seen = dict(pieces=0, stem_channels_last=[])
    in_pieces = fast_paths.in_pieces

    def counting(*args, **kwargs):
        seen['pieces'] += 1
        return in_pieces(*args, **kwargs)

    monkeypatch.setattr(fast_paths, 'in_pieces', counting)
    # a stage-1 map of the tiny model at 64x64 is 2.5+ pieces of this
    monkeypatch.setattr(fast_paths, 'PIECE_BYTES', 4096)
    model.patch_embed.proj.register_forward_pre_hook(
        lambda m, args: seen['stem_channels_last'].append(
            args[0].is_contiguous(memory_format=torch.channels_last)))
    return seen


def _ops(fn):
    with torch.profiler.profile() as prof:
        out = fn()
    return out, {e.name for e in prof.events()}


def test_off_is_the_plain_model(monkeypatch):
    """Off: no oneDNN matmul, no in-place GELU, no pieces, an NCHW image;
    the outputs equal those of grad mode exactly. On: each path runs."""
    model = _backbone()
    seen = _watch(model, monkeypatch)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(), using_fast_paths(False):
        off, ops = _ops(lambda: model(x))
    assert seen == dict(pieces=0, stem_channels_last=[False])
    assert not any('_linear_pointwise' in op for op in ops)
    assert 'aten::gelu_' not in ops
    grad_mode = model(x)
    assert all(torch.equal(a, b.detach()) for a, b in zip(off, grad_mode))

    seen['stem_channels_last'].clear()
    with torch.no_grad():
        on, ops = _ops(lambda: model(x))
    assert seen['pieces'] > 0 and seen['stem_channels_last'] == [True]
    assert 'aten::gelu_' in ops
    assert fast_paths.ONEDNN_AVAILABLE == any('_linear_pointwise' in op
                                              for op in ops)
    # float32 rounding of a different order of additions (oneDNN, the
    # pieces' smaller products, the channels-last conv); the float64 test
    # below bounds what else could differ
    assert max(rel_err(a, b) for a, b in zip(on, off)) < 1e-5


def test_on_and_off_agree_in_float64(monkeypatch):
    """In float64 (no oneDNN) the pieces, the in-place GELU and the
    channels-last stem change only the order of float64 additions: the
    outputs agree to float64 rounding amplified through the network's
    nine blocks (1e-12, about 10^4 unit roundoffs)."""
    model = _backbone(torch.float64)
    seen = _watch(model, monkeypatch)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        on = model(x)
        with using_fast_paths(False):
            off = model(x)
    assert seen['pieces'] > 0
    assert max(rel_err(a, b) for a, b in zip(on, off)) < 1e-12


def test_switch_reaches_built_models_and_fx_traces_through():
    """The switch is read at each call: a classifier built with the fast
    paths on computes plainly inside ``using_fast_paths(False)``.
    torch.fx's own tracer traces ConvFFN through to the plain ``F.linear``
    and ``F.gelu`` (timm's tracer keeps ``Linear`` and ``GELU`` as leaves,
    tests/timm/test_timm_interface.py), and the graph gives the eager values in
    inference, where the fast paths run, to float32 rounding."""
    model = randomize_(LITv2Classifier(**tiny_kwargs(), num_classes=5), 0)
    model.eval()
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad(), using_fast_paths(False):
        _, ops = _ops(lambda: model(x))
    assert 'aten::gelu_' not in ops

    ffn = model.layers[0].blocks[0].mlp
    traced = torch.fx.symbolic_trace(ffn)
    targets = [n.target for n in traced.graph.nodes
               if n.op == 'call_function']
    assert targets.count(torch.nn.functional.linear) == 2
    assert torch.nn.functional.gelu in targets
    tokens = torch.randn(2, 5, 6, ffn.fc1.in_features)
    with torch.no_grad():
        assert rel_err(traced(tokens), ffn(tokens)) < 1e-6
