"""Checkpoints in the reference's layouts load with no missing or unexpected
key."""
import pytest
import torch

from litv2 import LITV2_ARCHS, local_windows
from litv2.checkpoint import CheckpointMismatchError
from litv2.testing.reference import build_reference_backbone, randomize_
from litv2_openmmlab import LITv2
from tests.utils import tiny_kwargs


def reference_weights(arch='s', window=2, seed=3):
    cfg = dict(LITV2_ARCHS[arch], alpha=0.9, local_ws=local_windows(window))
    return cfg, randomize_(build_reference_backbone(**cfg), seed).state_dict()


def imagenet_checkpoint(state, num_classes=1000):
    """Layout of the released litv2_{s,m,b}.pth: classifier under 'model'."""
    model = {k: v for k, v in state.items() if not k.startswith('norm')}
    width = state['norm3.weight'].shape[0]
    model.update({'norm.weight': torch.ones(width),
                  'norm.bias': torch.zeros(width),
                  'head.weight': torch.randn(num_classes, width),
                  'head.bias': torch.zeros(num_classes)})
    return {'model': model, 'epoch': 299}


def detection_checkpoint(state):
    """Layout of the released RetinaNet / Mask R-CNN / Semantic FPN weights."""
    sd = {f'backbone.{k}': v for k, v in state.items()}
    sd['neck.lateral_convs.0.conv.weight'] = torch.randn(256, 192, 1, 1)
    return {'state_dict': sd, 'meta': {'epoch': 12}}


def pretrained(cfg, path, **kwargs):
    model = LITv2(**cfg, **kwargs,
                  init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    return model


def assert_backbone_equal(model, state, skip=()):
    own = model.state_dict()
    for k, v in state.items():
        if not k.startswith(skip):
            assert torch.equal(own[k], v), k


@pytest.mark.parametrize('arch,window', [('s', 2), ('b', 4)])
def test_imagenet_checkpoint_initialises_backbone(tmp_path, arch, window):
    cfg, state = reference_weights(arch, window)
    path = tmp_path / f'litv2_{arch}.pth'
    torch.save(imagenet_checkpoint(state), path)
    model = pretrained(cfg, path)
    assert_backbone_equal(model, state, skip=('norm1', 'norm2', 'norm3'))
    # Output norms are detection-only: freshly initialised.
    assert torch.equal(model.norm2.weight, torch.ones_like(model.norm2.weight))


def test_detection_checkpoint_loads_every_backbone_key(tmp_path):
    cfg, state = reference_weights('s', 2)
    path = tmp_path / 'retinanet_litv2_s.pth'
    torch.save(detection_checkpoint(state), path)
    model = pretrained(cfg, path)
    assert set(model.state_dict()) == set(state)
    assert_backbone_equal(model, state)


def test_detection_checkpoint_with_fewer_outputs(tmp_path):
    cfg, state = reference_weights('s', 2)
    path = tmp_path / 'ckpt.pth'
    torch.save(detection_checkpoint(state), path)
    model = pretrained(cfg, path, out_indices=(2, 3))
    assert_backbone_equal(model, {k: v for k, v in state.items()
                                  if not k.startswith('norm1')})


def test_bare_state_dict_with_module_prefix(tmp_path):
    cfg, state = reference_weights('s', 4)
    path = tmp_path / 'bare.pth'
    torch.save({f'module.{k}': v for k, v in state.items()}, path)
    assert_backbone_equal(pretrained(cfg, path), state)


def test_wrong_variant_is_refused_naming_the_file(tmp_path):
    cfg, state = reference_weights('s', 2)
    path = tmp_path / 'litv2_s.pth'
    torch.save(imagenet_checkpoint(state), path)
    with pytest.raises(CheckpointMismatchError, match='litv2_s.pth') as err:
        pretrained(dict(LITV2_ARCHS['m'], local_ws=(0, 0, 2, 1)), path)
    assert '240 missing from the file (layers.2.blocks.6.' in str(err.value)
    with pytest.raises(CheckpointMismatchError, match='of another shape'):
        pretrained(dict(cfg, alpha=0.5), path)


def test_unreadable_file_is_named(tmp_path):
    path = tmp_path / 'broken.pth'
    path.write_bytes(b'not a checkpoint at all')
    with pytest.raises(RuntimeError, match='broken.pth'):
        pretrained(tiny_kwargs(), path)


def test_default_init_without_init_cfg():
    model = LITv2(**tiny_kwargs())
    model.init_weights()
    linear = model.layers[2].blocks[0].attn.l_q
    assert linear.bias.abs().sum() == 0
    assert 0.01 < linear.weight.std().item() < 0.03
    offset = model.layers[0].downsample.dconv.conv_offset
    assert offset.weight.abs().sum() == 0 and offset.bias.abs().sum() == 0
