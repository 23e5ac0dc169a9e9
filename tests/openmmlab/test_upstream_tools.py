"""mmdet's and mmseg's own tools (as the pip packages ship them, under
``mmdet/.mim/tools/`` and ``mmseg/.mim/tools/``), ``RUNNERS.build`` and
``DetInferencer`` with this project's configs get the project's guarantees
through ``LITv2Runner`` (the configs' ``runner_type``) and the plugin's
checkpoint loaders: a paper config trains on a CPU (device adaptation,
reliability hooks, the work-directory lock), a checkpoint that lacks a block
stops the test tool before anything is evaluated, a data set that cannot be
built is named, a hostile checkpoint is refused."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from litv2_openmmlab.checkpoint import CheckpointMismatchError
from litv2_openmmlab.engine.hooks.work_dir_lock import LOCK_NAME
from litv2_openmmlab.engine.runner import DatasetError, LITv2Runner
from tests.tiny_data import (
    CONFIGS,
    REPO,
    make_ade,
    make_coco,
    tiny_det_config,
    tiny_seg_config,
)


def upstream_tool(package: str, name: str) -> Path:
    import importlib.util
    root = Path(importlib.util.find_spec(package).origin).parent
    path = root / '.mim' / 'tools' / f'{name}.py'
    assert path.is_file(), f'{package} ships no {path}'
    return path


def run(args, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO)] + [p for p in [env.get('PYTHONPATH')] if p])
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True,
                          timeout=600)


def partial_checkpoint(cfg_path: Path, path: Path) -> Path:
    """The config's model with random weights, saved without the last
    stage's first block (what a checkpoint of a shallower model lacks)."""
    from litv2_openmmlab.apis.inference import (
        build_inference_model,
        load_config,
    )
    cfg, task = load_config(str(cfg_path))
    state = build_inference_model(cfg, task).state_dict()
    state = {k: v for k, v in state.items()
             if not k.startswith('backbone.layers.3.blocks.0.')}
    torch.save({'state_dict': state, 'meta': {}}, path)
    return path


@pytest.mark.slow
def test_the_configs_name_litv2_runner():
    for path in sorted(CONFIGS.glob('*.py')) + sorted(
            (CONFIGS / 'quickstart').glob('*.py')):
        assert Config.fromfile(str(path)).get('runner_type') == \
            'LITv2Runner', path.name


@pytest.fixture(scope='module')
def det_config(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('upstream_det')
    return tiny_det_config(root / 'retinanet.py', 'retinanet_litv2_s_w2',
                           make_coco(root / 'coco'))


@pytest.mark.slow
def test_mmdet_train_tool_gets_the_guarantees(det_config, tmp_path):
    """mmdet's tools/train.py on the paper's RetinaNet config (AMP, SyncBN
    free): adapted to the CPU, reliability hooks on, work dir locked."""
    work = tmp_path / 'work'
    proc = run([upstream_tool('mmdet', 'train'), det_config, '--work-dir',
                work], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert 'reliability hooks: AtomicCheckpointHook' in out
    assert 'no GPU: AmpOptimWrapper replaced by' in out
    assert (work / LOCK_NAME).is_file()
    # RandomStateHook's states (exact resume); the file read as data
    from litv2_openmmlab.checkpoint import read_checkpoint
    assert 'rng_states' in read_checkpoint(str(work / 'epoch_1.pth'))


@pytest.mark.slow
def test_mmdet_test_tool_refuses_a_checkpoint_missing_a_block(det_config,
                                                               tmp_path):
    checkpoint = partial_checkpoint(det_config, tmp_path / 'partial.pth')
    proc = run([upstream_tool('mmdet', 'test'), det_config, checkpoint,
                '--work-dir', tmp_path / 'work'], tmp_path)
    assert proc.returncode != 0
    assert 'CheckpointMismatchError' in proc.stderr, proc.stderr[-3000:]
    assert 'backbone.layers.3.blocks.0.' in proc.stderr
    assert 'bbox_mAP' not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_mmseg_test_tool_refuses_a_checkpoint_missing_a_block(tmp_path):
    cfg = tiny_seg_config(tmp_path / 'fpn.py', 'semantic_fpn_litv2_s_ade20k',
                          make_ade(tmp_path / 'ade'))
    checkpoint = partial_checkpoint(cfg, tmp_path / 'partial.pth')
    proc = run([upstream_tool('mmseg', 'test'), cfg, checkpoint,
                '--work-dir', tmp_path / 'work'], tmp_path)
    assert proc.returncode != 0
    assert 'CheckpointMismatchError' in proc.stderr, proc.stderr[-3000:]
    assert 'mIoU: ' not in proc.stdout + proc.stderr  # no evaluation


def test_runners_build_gives_litv2_runner_with_strict_loading(det_config,
                                                              tmp_path):
    import mmdet_litv2  # noqa: F401
    cfg = Config.fromfile(str(det_config))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.load_from = str(partial_checkpoint(det_config,
                                           tmp_path / 'partial.pth'))
    runner = RUNNERS.build(cfg)
    assert type(runner) is LITv2Runner
    with pytest.raises(CheckpointMismatchError, match='blocks.0'):
        runner.test()
    # mmengine's own Runner (what Runner.from_cfg builds, whatever
    # runner_type says) gets strict loading from the configs' custom_hooks
    cfg.work_dir = str(tmp_path / 'work2')
    runner = Runner.from_cfg(cfg)
    assert type(runner) is Runner
    with pytest.raises(CheckpointMismatchError, match='blocks.0'):
        runner.test()


def test_runners_build_names_a_data_set_it_cannot_build(det_config,
                                                        tmp_path):
    import mmdet_litv2  # noqa: F401
    cfg = Config.fromfile(str(det_config))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.test_dataloader.dataset.ann_file = 'missing.json'
    with pytest.raises(DatasetError, match="ann_file='missing.json'"):
        RUNNERS.build(cfg).test()


def test_det_inferencer_refuses_a_hostile_checkpoint(det_config, tmp_path):
    from mmdet.apis import DetInferencer

    import mmdet_litv2  # noqa: F401
    from litv2.checkpoint import UnsafeCheckpointError
    from tests.checkpoints.test_checkpoint_schemes import RunsACommand
    marker = tmp_path / 'MARKER'
    path = tmp_path / 'hostile.pth'
    torch.save({'state_dict': {}, 'meta': RunsACommand(marker)}, path)
    with pytest.raises(UnsafeCheckpointError):
        DetInferencer(model=str(det_config), weights=str(path),
                      device='cpu')
    assert not marker.exists()
