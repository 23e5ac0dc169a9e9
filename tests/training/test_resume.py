"""Interruption loses nothing: a training killed (SIGKILL) between two
checkpoints, or while writing one, resumes with ``--resume`` from the last
complete checkpoint and ends with the very weights, to the bit, of an
uninterrupted run (``randomness=dict(seed=0, deterministic=True)``). With
two processes: tests/training/test_two_machines.py (a node killed between
checkpoints, both resumed, the weights to the bit)."""
import os
import subprocess
import sys

import pytest
import torch

from litv2_openmmlab.checkpoint import load_from_file_weights_only
from tests.tiny_data import REPO, make_ade, tiny_seg_config

# Semantic FPN (iteration-based loop, InfiniteSampler, random resize / crop /
# flip / photometric augmentation, drop path): 6 iterations, a checkpoint and
# a validation every 2, only the newest checkpoint kept.
RUN = """
custom_imports = dict(imports=['mmseg_litv2', 'tests.fault_hooks'],
                      allow_failed_imports=False)
train_cfg = dict(max_iters={iters}, val_interval=2)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=2, max_keep_ckpts=1))
randomness = dict(seed=0, deterministic=True)
custom_hooks = {hooks}
"""


def config(path, data, iters=6, hooks=()):
    return tiny_seg_config(path, 'semantic_fpn_litv2_s_ade20k', data,
                           iters=iters,
                           extra=RUN.format(iters=iters, hooks=list(hooks)))


def _env(**extra):
    # one thread everywhere: the same float operations in every run
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1',
                **extra)


def train(cfg, work_dir, *args):
    return subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'train.py'), str(cfg),
         '--work-dir', str(work_dir), *args], env=_env(), capture_output=True,
        text=True, timeout=400)


def weights(path):
    return load_from_file_weights_only(path)['state_dict']


def assert_bit_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def ok(run):
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.mark.heavy
def test_kill_while_saving_then_resume_is_exact(tmp_path):
    data = make_ade(tmp_path / 'ade', num_images=4)
    ok(train(config(tmp_path / 'fpn.py', data), tmp_path / 'full'))

    # killed after iteration 4's checkpoint is written to its temporary
    # file, before the rename; max_keep_ckpts=1 would delete iter_2 next
    work = tmp_path / 'killed'
    killed = train(config(tmp_path / 'kill.py', data,
                          hooks=[dict(type='KillDuringSaveHook', at=4)]),
                   work)
    assert killed.returncode in (-9, 137), killed.stderr[-3000:]
    assert not (work / 'iter_4.pth').exists()
    assert list(work.glob('.iter_4.pth.*.tmp'))  # the unfinished save
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')
    assert weights(work / 'iter_2.pth')  # intact and loadable

    run = ok(train(tmp_path / 'fpn.py', work, '--resume'))
    assert 'resumed epoch: 0, iter: 2' in run.stdout + run.stderr
    assert not list(work.glob('.*.tmp'))
    assert_bit_equal(weights(work / 'iter_6.pth'),
                     weights(tmp_path / 'full' / 'iter_6.pth'))
