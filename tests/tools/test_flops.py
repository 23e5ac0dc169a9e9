"""FLOP counting (litv2/flops.py, tools/get_flops.py): HiLo's attention
products, DTM's deformable product with either implementation of the op, and
the paper's tables for the S variants at the paper's input sizes."""
import json

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

from litv2 import DeformableTokenMerging, HiLo, hilo_flops
from litv2.flops import FlopCount, deform_conv_flops, per_stage
from litv2.paper_figures import PAPER_TABLES
from litv2_openmmlab.flops import count_flops, flop_analyzer
from tests.tiny_data import CONFIGS
from tools import get_flops as get_flops_tool

S_VARIANTS = ['retinanet_litv2_s_w2', 'mask_rcnn_litv2_s_w2',
              'semantic_fpn_litv2_s_ade20k']
THREADS = torch.get_num_threads()


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.mark.parametrize('dim,heads,window,alpha,h,w', [
    (64, 4, 2, 0.5, 14, 14),
    (64, 4, 2, 0.9, 13, 15),  # padded to 14x16
    (96, 3, 4, 0.5, 9, 11),
    (64, 4, 1, 0.9, 7, 5),  # global attention
    (64, 4, 2, 0.0, 6, 6),  # Hi-Fi only
    (64, 4, 2, 1.0, 6, 6),  # Lo-Fi only
])
def test_sdpa_rule_counts_what_hilo_flops_says(dim, heads, window, alpha, h,
                                                w):
    layer = HiLo(dim, heads, window, alpha).eval()
    count = count_flops(layer, (torch.randn(1, h, w, dim), ))
    assert count.paper == hilo_flops(dim, heads, window, alpha, h, w)
    assert 'aten::scaled_dot_product_attention' not in count.unsupported


def test_sdpa_rule_batch_and_value_width():
    class Attend(torch.nn.Module):
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v)

    q, k, v = (torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8),
               torch.randn(2, 3, 7, 4))
    # q @ k^T: 2*3 * 5*7*8; attn @ v: 2*3 * 5*7*4
    assert flop_analyzer(Attend(), (q, k, v)).total() == 6 * 35 * (8 + 4)


def _compiled_op(self, x):
    """The deformable conv as one custom op (as the reference runs it)."""
    return deform_conv2d(x, self.conv_offset(x), self.weight, self.bias,
                         stride=self.stride)


def _standard_ops(self, x):
    """The same conv written with standard ops: bilinear sampling of each
    kernel position, then a product with the weights."""
    b, c, h, w = x.shape
    k = self.kernel_size
    offset = self.conv_offset(x)
    ho, wo = offset.shape[-2:]
    taps = []
    for i in range(k):
        for j in range(k):
            dy = offset[:, 2 * (i * k + j)]
            dx = offset[:, 2 * (i * k + j) + 1]
            ys = torch.arange(ho).view(-1, 1) * k + i + dy
            xs = torch.arange(wo) * k + j + dx
            grid = torch.stack((xs * 2 / (w - 1) - 1, ys * 2 / (h - 1) - 1),
                               dim=-1)
            taps.append(F.grid_sample(x, grid, align_corners=True))
    sampled = torch.stack(taps, 2).view(b, c, k, k, ho, wo)
    out = torch.einsum('bcijhw,ocij->bohw', sampled, self.weight)
    return out + self.bias.view(1, -1, 1, 1)


@pytest.mark.parametrize('impl', [_compiled_op, _standard_ops])
def test_dtm_deformable_product_is_counted_apart(impl, monkeypatch):
    from litv2.dtm import DeformConv2dWithBias
    monkeypatch.setattr(DeformConv2dWithBias, 'forward', impl)
    dtm = DeformableTokenMerging(8, 16).eval()
    x = torch.randn(2, 9, 12, 8)  # odd height: the last row is dropped
    count = count_flops(dtm, (x, ))

    # Paper-comparable: the offset conv and the norm, nothing of the
    # deformable product (whatever the analyzer saw of it).
    conv_offset = torch.nn.Conv2d(8, 8, 2, stride=2)
    plain = flop_analyzer(conv_offset, (x.permute(0, 3, 1, 2), )).total()
    assert count.by_module['dconv'] == plain
    # Complete: plus the product of a plain conv of the same shape.
    conv = torch.nn.Conv2d(8, 16, 2, stride=2)
    product = flop_analyzer(conv, (x.permute(0, 3, 1, 2), )).total()
    assert count.dtm == {'dconv': product}
    assert product == deform_conv_flops(8, 16, 2, 2, 9, 12, batch=2)
    assert count.complete == count.paper + product
    assert count.complete_of('dconv') == plain + product


def test_per_stage_rows_add_up():
    count = FlopCount(paper=10, complete=13, params=0,
                      by_module={'': 10, 'a': 4, 'a.dconv': 1, 'b': 5},
                      dtm={'a.dconv': 3})
    assert per_stage(count, ['a', 'b', 'c']) == [
        ('a', 4, 7), ('b', 5, 5), ('other', 1, 1)]


@pytest.fixture(scope='module')
def get_flops():
    return get_flops_tool


@pytest.fixture(scope='module')
def paper_counts(get_flops, tmp_path_factory):
    """get_flops at the paper's input sizes, once per S config (large
    tensors: all threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    results = {}
    try:
        for name in S_VARIANTS:
            out = tmp_path_factory.mktemp('flops') / f'{name}.json'
            get_flops.main([str(CONFIGS / f'{name}.py'), '--json', str(out)])
            results[name] = json.loads(out.read_text())
    finally:
        torch.set_num_threads(threads)
    return results


@pytest.mark.slow
@pytest.mark.parametrize('name', S_VARIANTS)
def test_get_flops_reproduces_the_papers_table(paper_counts, name):
    result = paper_counts[name]
    expected_shape = [512, 512] if 'semantic' in name else [800, 1280]
    assert result['input_shape'] == expected_shape
    params_m, flops_g, _ = PAPER_TABLES[name]
    assert round(result['params'] / 1e6) == params_m
    assert result['flops'] / 1e9 == pytest.approx(flops_g, rel=0.01)
    # DTM of LITv2-S: 96->192, 192->384, 384->768 on maps of stride 4, 8, 16
    h, w = (s // 4 for s in expected_shape)
    dtm = sum(deform_conv_flops(96 * 2**i, 192 * 2**i, 2, 2, h >> i, w >> i)
              for i in range(3))
    assert sum(result['dtm_flops'].values()) == dtm
    assert result['flops_complete'] == result['flops'] + dtm


def test_reference_figure_of_retinanet_s(paper_counts):
    # mmengine's counter on the reference model: 242.30 G, 38.01 M
    result = paper_counts['retinanet_litv2_s_w2']
    assert round(result['flops'] / 1e9, 2) == 242.30
    assert round(result['params'] / 1e6, 2) == 38.01


def test_get_flops_on_quickstart_configs(get_flops, tmp_path, capsys):
    det = get_flops.main([
        str(CONFIGS / 'quickstart/retinanet_litv2_toy.py'), '--shape', '64',
        '96', '--per-stage'
    ])
    out = capsys.readouterr().out
    assert 'backbone.layers.2' in out and 'bbox_head' in out
    assert f"Params: {det['params'] / 1e6:.2f} M" in out
    assert 'FLOPs: ' in out and 'FLOPs (complete): ' in out
    assert det['input_shape'] == [64, 96]

    backbone = get_flops.main([
        str(CONFIGS / 'quickstart/retinanet_litv2_toy.py'), '--shape', '64',
        '96', '--backbone-only'
    ])
    assert 0 < backbone['flops'] < det['flops']
    assert 0 < backbone['params'] < det['params']
    assert backbone['flops_complete'] - backbone['flops'] == sum(
        backbone['dtm_flops'].values()) > 0

    seg = get_flops.main([
        str(CONFIGS / 'quickstart/semantic_fpn_litv2_toy.py'), '--shape', '50'
    ])
    assert seg['task'] == 'mmseg'
    assert seg['input_shape'] == [64, 64]  # padded to a multiple of 32


def test_get_flops_bad_arguments(get_flops, capsys):
    with pytest.raises(SystemExit):
        get_flops.main([str(CONFIGS / 'quickstart/retinanet_litv2_toy.py'),
                        '--shape', '1', '2', '3'])
    assert '--shape' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        get_flops.main([str(CONFIGS / 'quickstart/retinanet_litv2_toy.py'),
                        '--shape', '0'])
    assert '--shape' in capsys.readouterr().err
