"""Every checkpoint scheme of mmengine is read as data: a pickle that would
run ``os.system`` is put where each scheme finds its file (torch's hub cache
for URL schemes, so nothing is downloaded; ``MMENGINE_HOME``; stand-ins for
pavi and petrel), and loading it through mmengine's own door
(``CheckpointLoader``: ``load_from``, ``--resume``, ``tools/test.py``,
``init_cfg`` Pretrained of any backbone) is refused without running it."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import types
from urllib.parse import urlparse

import pytest
import torch
from mmengine.runner.checkpoint import (
    CheckpointLoader,
    _load_checkpoint,
    get_external_models,
    get_mmcls_models,
    get_torchvision_models,
)

import mmdet_litv2  # noqa: F401  (registers the loaders)
from litv2_openmmlab import LITv2
from litv2_openmmlab.checkpoint import (
    SCHEME_LOADERS,
    CheckpointError,
    UnsafeCheckpointError,
    use_safe_checkpoint_loader,
)
from tests.tiny_data import REPO
from tests.utils import tiny_kwargs


class RunsACommand:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    """A hostile checkpoint, the marker it would create, and a function
    that puts a copy where a URL's file is cached by torch.hub."""
    marker = tmp_path / 'MARKER'
    path = tmp_path / 'hostile.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)},
                'meta': RunsACommand(marker)}, path)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path / 'mmengine_home'))

    def cache(url):
        target = osp.join(torch.hub.get_dir(), 'checkpoints',
                          osp.basename(urlparse(url).path))
        os.makedirs(osp.dirname(target), exist_ok=True)
        shutil.copy(path, target)

    use_safe_checkpoint_loader()
    return types.SimpleNamespace(path=path, marker=marker, cache=cache,
                                 tmp=tmp_path)


def _refused(filename, marker, load=None):
    with pytest.raises(UnsafeCheckpointError) as err:
        (load or _load_checkpoint)(filename)
    assert 'posix.system' in str(err.value) or 'nt.system' in str(err.value)
    assert not marker.exists(), f'{filename}: the pickle ran'
    return str(err.value)


def test_local_path(hostile):
    _refused(str(hostile.path), hostile.marker)


@pytest.mark.parametrize('scheme', ['http://', 'https://'])
def test_url(hostile, scheme):
    url = f'{scheme}example.com/models/hostile-0123abcd.pth'
    hostile.cache(url)
    message = _refused(url, hostile.marker)
    assert url in message  # the message names the URL and its cached copy


@pytest.mark.parametrize('scheme', ['torchvision://', 'modelzoo://'])
def test_torchvision(hostile, scheme):
    hostile.cache(get_torchvision_models()['resnet18'])
    _refused(f'{scheme}resnet18', hostile.marker)


@pytest.mark.parametrize('scheme', ['open-mmlab://', 'openmmlab://'])
def test_openmmlab_url(hostile, scheme):
    name = 'detectron/resnet50_caffe'
    hostile.cache(get_external_models()[name])
    _refused(f'{scheme}{name}', hostile.marker)


def test_openmmlab_file_under_mmengine_home(hostile):
    home = hostile.tmp / 'mmengine_home'
    home.mkdir()
    shutil.copy(hostile.path, home / 'mine.pth')
    (home / 'open_mmlab.json').write_text(json.dumps({'mine': 'mine.pth'}))
    _refused('open-mmlab://mine', hostile.marker)


def test_mmcls(hostile):
    name = sorted(get_mmcls_models())[0]
    hostile.cache(get_mmcls_models()[name])
    _refused(f'mmcls://{name}', hostile.marker)


def test_pavi(hostile, monkeypatch):
    source = hostile.path

    class Model:
        name = 'hostile.pth'

        def download(self, target):
            shutil.copy(source, target)

    modelcloud = types.SimpleNamespace(get=lambda path: Model())
    monkeypatch.setitem(sys.modules, 'pavi',
                        types.SimpleNamespace(modelcloud=modelcloud))
    _refused('pavi://project/hostile', hostile.marker)


@pytest.mark.parametrize('filename', ['s3://bucket/hostile.pth',
                                      'cluster1:s3://bucket/hostile.pth',
                                      'petrel://bucket/hostile.pth'])
def test_s3_and_petrel(hostile, monkeypatch, filename):
    data = hostile.path.read_bytes()

    class Client:

        def __init__(self, *args, **kwargs):
            pass

        def Get(self, path):  # noqa: N802  (petrel's name)
            return data

    module = types.ModuleType('petrel_client')
    module.client = types.SimpleNamespace(Client=Client)
    monkeypatch.setitem(sys.modules, 'petrel_client', module)
    monkeypatch.setitem(sys.modules, 'petrel_client.client', module.client)
    assert filename in _refused(filename, hostile.marker)


def test_pretrained_of_litv2_and_of_mmdets_own_resnet(hostile):
    from mmdet.models.backbones import ResNet
    hostile.cache(get_external_models()['detectron/resnet50_caffe'])
    backbone = LITv2(**tiny_kwargs(), init_cfg=dict(
        type='Pretrained', checkpoint='open-mmlab://detectron/resnet50_caffe'))
    _refused(None, hostile.marker, lambda _: backbone.init_weights())
    hostile.cache(get_torchvision_models()['resnet18'])
    resnet = ResNet(depth=18, init_cfg=dict(type='Pretrained',
                                            checkpoint='torchvision://resnet18'))
    _refused(None, hostile.marker, lambda _: resnet.init_weights())


def test_tools_test_with_a_torchvision_checkpoint(hostile, toy_cwd):
    hostile.cache(get_torchvision_models()['resnet18'])
    config = REPO / 'configs' / 'quickstart' / 'retinanet_litv2_toy.py'
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'test.py'), str(config),
         'torchvision://resnet18', '--work-dir', str(hostile.tmp / 'work')],
        cwd=toy_cwd, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('UnsafeCheckpointError: checkpoint '
                           "'https://download.pytorch.org/models/"
                           "resnet18-f37072fd.pth"), last
    assert 'Traceback' not in proc.stderr
    assert not hostile.marker.exists()


def test_every_scheme_of_mmengine_is_covered():
    """Fails when mmengine registers a scheme this project does not read
    itself (compared with mmengine's own registrations, in a fresh
    process)."""
    code = ('from mmengine.runner.checkpoint import CheckpointLoader\n'
            'print(sorted(CheckpointLoader._schemes))')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, check=True, timeout=120)
    mmengines = set(eval(proc.stdout.strip().splitlines()[-1]))
    assert mmengines == set(SCHEME_LOADERS), (
        'schemes of mmengine without a loader here: '
        f'{sorted(mmengines - set(SCHEME_LOADERS))}')
    for prefix, loader in SCHEME_LOADERS.items():
        assert CheckpointLoader._schemes[prefix] is loader, prefix


def test_a_scheme_registered_later_is_refused(monkeypatch):
    monkeypatch.setattr(CheckpointLoader, '_schemes',
                        dict(CheckpointLoader._schemes))
    CheckpointLoader.register_scheme('newscheme://',
                                     lambda f, map_location=None: {})
    use_safe_checkpoint_loader()
    with pytest.raises(CheckpointError, match="'newscheme://x'.*refused"):
        _load_checkpoint('newscheme://x')
