"""tools/export_onnx.py: the classifier and the detection backbone export
with standard ONNX ops and onnxruntime reproduces PyTorch to 1e-4."""
from pathlib import Path

import onnx
import pytest
import timm
import torch

from litv2.testing.reference import randomize_
from tests.utils import TINY_ARCH
from tools import export_onnx

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures('one_thread')


def standard_ops(path):
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    domains = {n.domain for n in graph.graph.node}
    return {n.op_type for n in graph.graph.node}, domains, graph


def test_classifier_exports_and_matches(tmp_path):
    import litv2.timm_models  # noqa: F401
    model = randomize_(
        timm.create_model('litv2_s', num_classes=10, **TINY_ARCH))
    path = tmp_path / 'tiny.onnx'
    # odd size: HiLo and patch-embedding padding, DTM's dropped row/column
    traced = torch.randn(1, 3, 70, 98)
    export_onnx.export(model, traced, str(path), ['logits'], 17)
    ops, domains, graph = standard_ops(path)
    assert domains <= {''} and 'GridSample' in ops
    assert graph.opset_import[0].version == 17
    images = torch.randn(3, 3, 70, 98)  # another batch size
    worst, diffs = export_onnx.check(model, str(path), images, 1e-4)
    assert worst < 1e-4 and set(diffs) == {'logits'}
    # the check can fail: the file no longer holds the model's weights
    with torch.no_grad():
        model.head.bias += 1.0
    worst, _ = export_onnx.check(model, str(path), images, 1e-4)
    assert worst > 1e-2


def test_detection_backbone_cli(tmp_path, capsys):
    output = tmp_path / 'backbone.onnx'
    export_onnx.main([
        str(ROOT / 'configs/quickstart/retinanet_litv2_toy.py'), '--shape',
        '64', '96', '--output', str(output), '--check'])
    printed = capsys.readouterr().out
    assert 'match within 0.0001' in printed
    ops, domains, graph = standard_ops(output)
    assert domains <= {''} and 'GridSample' in ops
    assert [o.name for o in graph.graph.output] == [
        'stage0', 'stage1', 'stage2', 'stage3']


def test_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        export_onnx.parse_args(['litv2_s', '--opset', '15'])
    with pytest.raises(SystemExit):
        export_onnx.parse_args(['litv2_s', '--shape', '1', '2', '3'])
    with pytest.raises(SystemExit):
        export_onnx.parse_args(['litv2_s', '--cfg-options', 'a=1'])
    with pytest.raises(ValueError, match='litv2_x'):
        export_onnx.build_classifier('litv2_x')
    not_litv2 = tmp_path / 'resnet.py'
    not_litv2.write_text("default_scope = 'mmdet'\n"
                         "model = dict(backbone=dict(type='ResNet'))\n")
    with pytest.raises(ValueError, match='not a LITv2 backbone'):
        export_onnx.build_backbone(str(not_litv2))
