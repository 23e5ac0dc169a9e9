"""The checkpoint formats people hold are read, as data, by every loader.

The files are written by a separate process that has the foreign classes
(stand-in ``yacs`` and ``fvcore`` modules on its ``sys.path``; argparse and
types are the real ones): the reference LITv2's training files (``config``
a yacs ``CfgNode``), DeiT's (``args`` an ``argparse.Namespace``), mmdet
2.x's (``meta`` with numpy scalars), numpy 1.x pickles, DDP's ``module.``
prefix, safetensors. This process has none of those config classes: they
are read as plain dicts, never constructed. A ``CfgNode`` carrying an
object that would call ``os.system`` is refused and nothing runs."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import timm
import torch

import mmdet_litv2  # noqa: F401  (LITv2 in mmdet's registry, the loaders)
from litv2.checkpoint import (
    CheckpointMismatchError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    read_checkpoint_file,
)
from litv2_openmmlab import LITv2
from litv2_openmmlab.checkpoint import load_checkpoint_strictly
from tests.tiny_data import REPO, make_coco, tiny_det_config
from tests.utils import TINY_ARCH, tiny_kwargs
from tools import infer as infer_tool
from tools import test as test_tool

STAND_INS = {
    'yacs/__init__.py': '',
    'yacs/config.py': '''
        class CfgNode(dict):
            """yacs's config node: a dict subclass with attribute flags."""

            def __init__(self, init_dict=None, new_allowed=False):
                super().__init__(init_dict or {})
                self.__dict__['__immutable__'] = False
                self.__dict__['__deprecated_keys__'] = set()
                self.__dict__['__new_allowed__'] = new_allowed

            def __getattr__(self, name):
                return self[name]
    ''',
    'fvcore/__init__.py': '',
    'fvcore/common/__init__.py': '',
    'fvcore/common/config.py': '''
        from yacs.config import CfgNode as _CfgNode

        class CfgNode(_CfgNode):
            pass
    ''',
}

WRITER = '''
import argparse, json, os, sys, types
import numpy as np
import torch
from yacs.config import CfgNode
from fvcore.common.config import CfgNode as FvCfgNode

out, classifier, detector, marker = sys.argv[1:5]
cls = torch.load(classifier, weights_only=True)
det = torch.load(detector, weights_only=True)
optimizer = {'state': {}, 'param_groups': [{'lr': 1e-3, 'params': [0, 1]}]}

class RunsACommand:
    def __reduce__(self):
        return (os.system, ('touch ' + marker, ))

config = CfgNode({'MODEL': CfgNode({'TYPE': 'litv2', 'DROP_PATH_RATE': 0.2,
                                    'LIT': CfgNode({'ALPHA': 0.9})}),
                  'TRAIN': CfgNode({'EPOCHS': 300, 'BASE_LR': 1e-3})})
files = {
    # the reference's classification/utils.py save_checkpoint
    'reference.pth': {'model': cls, 'optimizer': optimizer,
                      'lr_scheduler': {'last_epoch': 3},
                      'max_accuracy': np.float64(81.5), 'epoch': 3,
                      'config': config},
    'fvcore.pth': {'model': cls, 'cfg': FvCfgNode({'SOLVER': FvCfgNode(
        {'BASE_LR': 0.1})})},
    'deit.pth': {'model': cls, 'optimizer': optimizer, 'epoch': 3,
                 'args': argparse.Namespace(model='litv2_s', lr=5e-4,
                                            input_size=224)},
    'simple_namespace.pth': {'state_dict': cls,
                             'args': types.SimpleNamespace(lr=0.1)},
    'ddp.pth': {'model': {'module.' + k: v for k, v in cls.items()}},
    # mmdet 2.x: meta with the classes, the config text, numpy scalars
    'mmdet2.pth': {'meta': {'mmdet_version': '2.25.0', 'CLASSES': (
        'person', 'car'), 'config': 'model = dict(...)', 'epoch': 12,
        'iter': np.int64(7), 'hook_msgs': {'best_score': np.float64(0.5)}},
        'state_dict': det, 'optimizer': optimizer},
    # a whole detector under 'model', with the reference's config object
    'detector_model_key.pth': {'model': det, 'config': config, 'epoch': 1},
    'evil_config.pth': {'model': cls, 'config': CfgNode(
        {'MODEL': CfgNode({'HOOK': RunsACommand()})})},
}
for name, obj in files.items():
    torch.save(obj, os.path.join(out, name))
# numpy 1.x wrote its arrays under numpy.core (numpy 2: numpy._core); the
# legacy format keeps the pickle whole in the file, so rename there
legacy = os.path.join(out, 'numpy1.pth')
torch.save({'model': cls, 'meta': {'seen': np.arange(3),
                                   'eta': np.float64(1.5)}},
           legacy, _use_new_zipfile_serialization=False)
data = open(legacy, 'rb').read()
assert b'numpy._core.multiarray' in data or b'numpy.core.multiarray' in data
open(legacy, 'wb').write(data.replace(b'numpy._core.multiarray',
                                      b'numpy.core.multiarray'))
from safetensors.torch import save_file
save_file({k: v.contiguous() for k, v in cls.items()},
          os.path.join(out, 'classifier.safetensors'))
'''

CLASSIFIER_FILES = ['reference.pth', 'fvcore.pth', 'deit.pth',
                    'simple_namespace.pth', 'ddp.pth', 'numpy1.pth',
                    'classifier.safetensors']


@pytest.fixture(scope='module')
def written(tmp_path_factory):
    """The files, the tensors they hold, and the detector's config."""
    from mmengine.config import Config

    from litv2_openmmlab.apis import build_inference_model
    from litv2_openmmlab.engine.runner import detect_task, setup_task
    root = tmp_path_factory.mktemp('formats')
    fake = root / 'stand_ins'
    for rel, text in STAND_INS.items():
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text(textwrap.dedent(text))
    torch.manual_seed(0)
    classifier = timm.create_model('litv2_s', num_classes=5,
                                   **TINY_ARCH).state_dict()
    cfg_path = tiny_det_config(root / 'retinanet.py', 'retinanet_litv2_s_w2',
                               make_coco(root / 'coco'))
    cfg = Config.fromfile(str(cfg_path))
    task = detect_task(cfg)
    setup_task(task)
    detector = build_inference_model(cfg, task).state_dict()
    torch.save(classifier, root / 'classifier_plain.pth')
    torch.save(detector, root / 'detector_plain.pth')
    out = root / 'files'
    out.mkdir()
    marker = root / 'MARKER'
    subprocess.run(
        [sys.executable, '-c', WRITER, str(out), str(root /
         'classifier_plain.pth'), str(root / 'detector_plain.pth'),
         str(marker)], check=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=str(fake)))
    assert not marker.exists()
    for name in ('yacs', 'fvcore'):
        assert name not in sys.modules  # this process has no such class
    return dict(dir=out, classifier=classifier, detector=detector,
                config=cfg_path, marker=marker)


def _equal(loaded, saved, keys):
    assert keys, 'nothing compared'
    for key in keys:
        assert torch.equal(loaded[key], saved[key]), key


@pytest.mark.parametrize('name', CLASSIFIER_FILES)
def test_read_as_plain_data(written, name):
    checkpoint = read_checkpoint_file(written['dir'] / name)
    if name == 'reference.pth':
        assert type(checkpoint['config']) is dict
        assert checkpoint['config']['MODEL']['LIT'] == {'ALPHA': 0.9}
        assert checkpoint['max_accuracy'] == 81.5
    if name == 'fvcore.pth':
        assert checkpoint['cfg'] == {'SOLVER': {'BASE_LR': 0.1}}
    if name == 'deit.pth':
        assert checkpoint['args'] == {'model': 'litv2_s', 'lr': 5e-4,
                                      'input_size': 224}
    if name == 'simple_namespace.pth':
        assert checkpoint['args'] == {'lr': 0.1}
    if name == 'numpy1.pth':
        assert np.array_equal(checkpoint['meta']['seen'], np.arange(3))


@pytest.mark.parametrize('name', CLASSIFIER_FILES)
def test_pretrained_and_timm_read_every_classifier_format(written, name):
    path = str(written['dir'] / name)
    saved = written['classifier']
    backbone = LITv2(**tiny_kwargs(), init_cfg=dict(type='Pretrained',
                                                    checkpoint=path))
    backbone.init_weights()
    _equal(backbone.state_dict(), saved,
           [k for k in saved if k.startswith(('patch_embed.', 'layers.'))])
    model = timm.create_model('litv2_s', pretrained=True, num_classes=5,
                              **TINY_ARCH,
                              pretrained_cfg_overlay=dict(file=path,
                                                          num_classes=5))
    _equal(model.state_dict(), saved, list(saved))


@pytest.mark.parametrize('name', ['mmdet2.pth', 'detector_model_key.pth'])
def test_whole_detector_formats_load_strictly(written, name):
    from mmengine.config import Config

    from litv2_openmmlab.apis import build_inference_model
    cfg = Config.fromfile(str(written['config']))
    model = build_inference_model(cfg, 'mmdet')
    checkpoint = load_checkpoint_strictly(model, written['dir'] / name)
    _equal(model.state_dict(), written['detector'], list(written['detector']))
    if name == 'mmdet2.pth':
        assert checkpoint['meta']['iter'] == 7
    # the detector's backbone initialises LITv2 through Pretrained too
    arch = {k: v for k, v in cfg.model.backbone.items()
            if k not in ('type', 'init_cfg')}
    backbone = LITv2(**arch, init_cfg=dict(
        type='Pretrained', checkpoint=str(written['dir'] / name)))
    backbone.init_weights()
    _equal(backbone.state_dict(), {k[len('backbone.'):]: v for k, v in
                                   written['detector'].items()
                                   if k.startswith('backbone.')},
           list(backbone.state_dict()))


def test_tools_test_and_infer_read_them(written, tmp_path, capsys):
    config = str(written['config'])
    metrics = test_tool.main([config, str(written['dir'] /
                                           'detector_model_key.pth'),
                              '--work-dir', str(tmp_path / 'work')])
    assert 'coco/bbox_mAP' in metrics
    image = next((written['config'].parent / 'coco' / 'img').iterdir())
    assert infer_tool.main([str(image), config, '--weights',
                            str(written['dir'] / 'mmdet2.pth'),
                            '--out-dir', str(tmp_path / 'out')]) == 0
    preds = json.loads((tmp_path / 'out' / 'preds' /
                        f'{image.stem}.json').read_text())
    assert len(preds['scores']) == len(preds['bboxes'])


def test_a_config_object_that_would_run_code_is_refused(written):
    path = written['dir'] / 'evil_config.pth'
    with pytest.raises(UnsafeCheckpointError,
                       match=r"'.*evil_config.pth' refused: its pickle asks "
                       r'for (posix|nt).system'):
        read_checkpoint_file(path)
    backbone = LITv2(**tiny_kwargs(), init_cfg=dict(type='Pretrained',
                                                    checkpoint=str(path)))
    with pytest.raises(UnsafeCheckpointError):
        backbone.init_weights()
    with pytest.raises(UnsafeCheckpointError):
        timm.create_model('litv2_s', pretrained=True, **TINY_ARCH,
                          pretrained_cfg_overlay=dict(file=str(path)))
    assert not written['marker'].exists()


def test_wrong_kind_of_file_says_what_it_is(written, tmp_path):
    detector = str(written['dir'] / 'mmdet2.pth')
    with pytest.raises(CheckpointMismatchError) as err:
        timm.create_model('litv2_s', pretrained=True, **TINY_ARCH,
                          pretrained_cfg_overlay=dict(file=detector))
    message = str(err.value)
    assert len(message) < 700 and '\n' not in message, message
    assert 'mmdet2.pth' in message
    assert 'It is a detector (keys under backbone, bbox_head, neck)' \
        in message
    assert 'the model expects an ImageNet classifier' in message
    # optimizer-only
    torch.save({'optimizer': {'state': {}, 'param_groups': []}, 'epoch': 3},
               tmp_path / 'optim.pth')
    backbone = LITv2(**tiny_kwargs(), init_cfg=dict(
        type='Pretrained', checkpoint=str(tmp_path / 'optim.pth')))
    with pytest.raises(Exception, match='holds no weights '
                       r'\(optimizer / training state only'):
        backbone.init_weights()


def test_a_raw_hostile_pickle_is_unsafe_not_corrupt(tmp_path):
    import pickle

    class RunsACommand:

        def __reduce__(self):
            return (os.system, (f'touch {tmp_path / "MARKER"}', ))

    (tmp_path / 'raw.pkl').write_bytes(pickle.dumps(RunsACommand()))
    with pytest.raises(UnsafeCheckpointError):
        read_checkpoint_file(tmp_path / 'raw.pkl')
    (tmp_path / 'text.pth').write_text('not a checkpoint')
    with pytest.raises(CorruptCheckpointError):
        read_checkpoint_file(tmp_path / 'text.pth')
    assert not (tmp_path / 'MARKER').exists()


def test_a_directory_is_named_a_directory(tmp_path):
    with pytest.raises(IsADirectoryError, match='is a directory'):
        read_checkpoint_file(tmp_path)
    backbone = LITv2(**tiny_kwargs(), init_cfg=dict(type='Pretrained',
                                                    checkpoint=str(tmp_path)))
    with pytest.raises(IsADirectoryError, match='is a directory'):
        backbone.init_weights()
    assert REPO.exists()


def test_timm_release_download_is_read_as_data(written, tmp_path,
                                               monkeypatch):
    """``pretrained=True`` reads the release from timm's cache (where it is
    downloaded) with the same reader: the reference's training layout with
    its yacs config loads; nothing is downloaded, the file is in place."""
    import shutil
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    cache = tmp_path / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)
    shutil.copy(written['dir'] / 'reference.pth', cache / 'litv2_s.pth')
    model = timm.create_model('litv2_s', pretrained=True, num_classes=5,
                              **TINY_ARCH)
    saved = written['classifier']
    _equal(model.state_dict(), saved,
           [k for k in saved if not k.startswith('head.')])
