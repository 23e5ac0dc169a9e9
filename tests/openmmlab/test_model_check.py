"""The LITv2 backbone's output widths against the channels its consumers
expect (litv2_openmmlab/model_config_check.py): checked when the tools build
the model, before any data is read; a mismatch names both lists and the
keys."""
import pytest
from mmengine.config import Config

from litv2_openmmlab.model_config_check import (
    ModelConfigError,
    check_backbone_widths,
    litv2_output_widths,
)
from tests.tiny_data import CONFIGS
from tools import test as test_tool
from tools import train as train_tool

ALL_CONFIGS = sorted(CONFIGS.glob('*.py')) + sorted(
    (CONFIGS / 'quickstart').glob('*.py'))


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=lambda p: p.stem)
def test_the_shipped_configs_pass(path):
    check_backbone_widths(Config.fromfile(str(path)).model)


def test_widths_follow_embed_dim_and_out_indices():
    assert litv2_output_widths(dict(type='LITv2')) == [96, 192, 384, 768]
    assert litv2_output_widths(
        dict(type='LITv2', embed_dim=32, out_indices=(3, 1))) == [64, 256]
    assert litv2_output_widths(dict(type='ResNet', depth=50)) is None


def test_neck_mismatch_names_both_lists_and_the_keys():
    model = Config.fromfile(
        str(CONFIGS / 'retinanet_litv2_s_w2.py')).model
    model.backbone.embed_dim = 128  # LITv2-B widths, LITv2-S neck
    with pytest.raises(ModelConfigError) as err:
        check_backbone_widths(model)
    message = str(err.value)
    assert 'model.neck.in_channels=[96, 192, 384, 768]' in message
    assert '[128, 256, 512, 1024]' in message
    assert 'model.backbone.embed_dim=128' in message
    assert 'Set model.neck.in_channels=[128, 256, 512, 1024]' in message


def test_out_of_range_out_indices_is_the_backbones_error_first():
    # Before: the neck check ran first and advised in_channels=[512], the
    # width of a stage that does not exist.
    model = Config.fromfile(
        str(CONFIGS / 'retinanet_litv2_s_w2.py')).model
    model.backbone.out_indices = (4, )
    with pytest.raises(ModelConfigError) as err:
        check_backbone_widths(model)
    message = str(err.value)
    assert message.startswith('model.backbone: out_indices entries must be '
                              'in [0, 4)'), message
    assert 'neck' not in message and '512' not in message


def test_heads_reading_the_backbone_are_checked_without_a_neck():
    model = dict(type='EncoderDecoder',
                 backbone=dict(type='LITv2', embed_dim=32),
                 decode_head=dict(in_channels=[32, 64, 128, 256],
                                  in_index=[0, 1, 2, 3]),
                 auxiliary_head=dict(in_channels=128, in_index=2))
    check_backbone_widths(model)
    model['auxiliary_head']['in_channels'] = 384  # a LITv2-S value
    with pytest.raises(ModelConfigError,
                       match=r'model.auxiliary_head.in_channels=384 .*'
                       r'in_index=2: 128; .*\[32, 64, 128, 256\]'):
        check_backbone_widths(model)
    model['auxiliary_head'] = dict(in_channels=128, in_index=5)
    with pytest.raises(ModelConfigError, match='in_index=5 points past'):
        check_backbone_widths(model)


def test_tools_refuse_before_reading_any_data(tmp_path):
    """tools/train.py and tools/test.py stop at the config, before the
    runner (model, data) is built; the toy data need not exist."""
    cfg = str(CONFIGS / 'quickstart' / 'retinanet_litv2_toy.py')
    wrong = ['--cfg-options', 'model.neck.in_channels=[32,64,96,256]',
             '--work-dir', str(tmp_path)]
    with pytest.raises(ModelConfigError, match=r'\[32, 64, 96, 256\].*'
                       r'\[32, 64, 128, 256\]'):
        train_tool.main([cfg] + wrong)
    ckpt = tmp_path / 'x.pth'
    ckpt.write_bytes(b'')
    with pytest.raises(ModelConfigError):
        test_tool.main([cfg, str(ckpt)] + wrong)
