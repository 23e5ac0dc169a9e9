"""Checkpoints are data, not code: every loading path (mmengine's
CheckpointLoader as used by Runner load_from / resume and PretrainedInit,
LITv2's own init_cfg loading, tools/test.py) refuses a pickle that would call
a function, without running it, and names a truncated or foreign file in a
one-line error."""
import os
import subprocess
import sys

import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint

from litv2_openmmlab import LITv2
from litv2_openmmlab.checkpoint import (
    CorruptCheckpointError,
    UnsafeCheckpointError,
    load_from_file_weights_only,
    use_safe_checkpoint_loader,
)
from tests.tiny_data import REPO, make_coco, tiny_det_config
from tests.utils import tiny_kwargs


class _RunsCommand:
    """Pickles as ``os.system(command)``: what a hostile checkpoint holds."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command, )


@pytest.fixture
def files(tmp_path):
    """A hostile checkpoint (creates ``marker`` when unpickled unsafely),
    a truncated one, a text file and an empty file."""
    marker = tmp_path / 'marker'
    model = LITv2(**tiny_kwargs())
    hostile = tmp_path / 'hostile.pth'
    torch.save({'state_dict': model.state_dict(),
                'meta': _RunsCommand(f'touch {marker}')}, hostile)
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': model.state_dict()}, good)
    truncated = tmp_path / 'truncated.pth'
    data = good.read_bytes()
    truncated.write_bytes(data[:len(data) // 2])
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint\n')
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    return dict(marker=marker, hostile=hostile, good=good,
                truncated=truncated, text=text, empty=empty)


def test_hostile_pickle_is_refused_everywhere_and_nothing_runs(files):
    use_safe_checkpoint_loader()
    hostile = str(files['hostile'])
    loaders = [
        lambda: load_from_file_weights_only(hostile),
        # Runner.load_checkpoint / resume / PretrainedInit all call these
        lambda: _load_checkpoint(hostile, map_location='cpu'),
        lambda: load_checkpoint(LITv2(**tiny_kwargs()), hostile),
        lambda: LITv2(**tiny_kwargs(), init_cfg=dict(
            type='Pretrained', checkpoint=hostile)).init_weights(),
    ]
    for load in loaders:
        with pytest.raises(UnsafeCheckpointError) as err:
            load()
        message = str(err.value)
        assert hostile in message and 'system' in message
        assert '\n' not in message
    assert not files['marker'].exists()


@pytest.mark.parametrize('name', ['truncated', 'text', 'empty'])
def test_broken_file_gives_one_line_naming_it(files, name):
    use_safe_checkpoint_loader()
    path = str(files[name])
    for load in (lambda: load_from_file_weights_only(path),
                 lambda: _load_checkpoint(path, map_location='cpu')):
        with pytest.raises(CorruptCheckpointError) as err:
            load()
        assert path in str(err.value) and '\n' not in str(err.value)
        assert err.value.__cause__ is None  # no torch traceback chained


def test_good_checkpoint_loads(files):
    state = load_from_file_weights_only(files['good'])['state_dict']
    model = LITv2(**tiny_kwargs())
    model.load_state_dict(state)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_from_file_weights_only(files['good'].parent / 'missing.pth')


@pytest.mark.slow
def test_tools_test_prints_one_line(files, tmp_path):
    """tools/test.py exits with one line on stderr, no traceback, and the
    hostile file's command does not run."""
    cfg = tiny_det_config(tmp_path / 'retinanet.py', 'retinanet_litv2_s_w2',
                          make_coco(tmp_path / 'coco'))
    run = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'test.py'), str(cfg),
         str(files['hostile']), '--work-dir', str(tmp_path / 'work')],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1'))
    assert run.returncode == 1, run.stderr[-2000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith('UnsafeCheckpointError: checkpoint ')
    assert str(files['hostile']) in last
    assert 'Traceback' not in run.stderr
    assert not files['marker'].exists()
