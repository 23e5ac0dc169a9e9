"""Bad input gets one line naming the file, key or argument (issue 22):
checkpoint paths that are directories or missing, a config with a syntax
error, a string alpha, a config error in tools/get_flops.py, a checkpoint
that does not fit in tools/infer.py, and an image the visualiser cannot
draw."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from litv2_openmmlab import LITv2
from tests.tiny_data import CONFIGS, REPO
from tests.utils import tiny_kwargs
from tools import infer

QUICKSTART = CONFIGS / 'quickstart'


def _tool(name, *args, cwd=REPO):
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / f'{name}.py'),
         *map(str, args)], capture_output=True, text=True, timeout=300,
        cwd=cwd, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    return proc.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_tools_test_checkpoint_directory_and_missing(tmp_path):
    config = QUICKSTART / 'retinanet_litv2_toy.py'
    last = _tool('test', config, tmp_path)
    assert last == (f"CheckpointIsADirectoryError: checkpoint '{tmp_path}' "
                    'is a directory, not a checkpoint file')
    last = _tool('test', config, tmp_path / 'missing.pth')
    assert last == (f"CheckpointNotFoundError: checkpoint "
                    f"'{tmp_path / 'missing.pth'}' not found")


@pytest.mark.slow
def test_pretrained_file_missing_in_tools_train(tmp_path, toy_cwd):
    config = tmp_path / 'pretrained.py'
    config.write_text(
        f"_base_ = {str(QUICKSTART / 'retinanet_litv2_toy.py')!r}\n"
        "model = dict(backbone=dict(init_cfg=dict(_delete_=True, "
        "type='Pretrained', "
        f"checkpoint='{tmp_path}/no.pth')))\n")
    last = _tool('train', config, '--work-dir', tmp_path / 'work',
                 cwd=toy_cwd)
    assert last == (f"CheckpointNotFoundError: checkpoint "
                    f"'{tmp_path}/no.pth' not found"), last


def test_config_syntax_error_names_the_file_and_line(tmp_path):
    config = tmp_path / 'broken.py'
    config.write_text("_base_ = []\nmodel = dict(\n    type='X'\n    a=1)\n")
    last = _tool('get_flops', config)
    assert last.startswith(f"ConfigFileError: config '{config}': syntax "
                           'error at line 3'), last


def test_get_flops_model_config_error_in_one_line():
    last = _tool('get_flops', CONFIGS / 'retinanet_litv2_s_w2.py',
                 '--cfg-options', 'model.backbone.out_indices=[4]')
    assert last.startswith('ModelConfigError: model.backbone: out_indices '
                           'entries must be in [0, 4)'), last


@pytest.mark.parametrize('value', ['0.5', None, [0.5]])
def test_alpha_of_another_type_is_named(value):
    with pytest.raises(ValueError, match=r'^alpha must be a number, got'):
        LITv2(**tiny_kwargs(alpha=value))


def test_infer_names_an_image_it_cannot_draw_and_goes_on(tmp_path, capsys):
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / 'a.png')
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(
        tmp_path / 'b.png')
    status = infer.main([str(tmp_path / '*.png'),
                         str(QUICKSTART / 'semantic_fpn_litv2_toy.py'),
                         '--out-dir', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert status == 1
    assert f'[infer] could not draw {tmp_path / "a.png"} (' in err
    assert 'could not be drawn: ' + str(tmp_path / 'a.png') in err
    # the other image is drawn, both predictions are written
    assert (tmp_path / 'out' / 'vis' / 'b.png').exists()
    assert (tmp_path / 'out' / 'preds' / 'a.png').exists()
    assert (tmp_path / 'out' / 'preds' / 'b.png').exists()


def test_infer_mismatch_advice_fits_infer(tmp_path, capsys):
    torch.save({'state_dict': {'w': torch.zeros(1)}}, tmp_path / 'x.pth')
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / 'a.png')
    status = infer.main([str(tmp_path / 'a.png'),
                         str(QUICKSTART / 'retinanet_litv2_toy.py'),
                         '--weights', str(tmp_path / 'x.pth')])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 1
    assert err.startswith('[infer] CheckpointMismatchError: ')
    assert 'tools/infer.py loads every key' in err
    assert "--allow-missing 'PATTERN'" not in err
    assert '(tools/test.py --allow-missing' in err
