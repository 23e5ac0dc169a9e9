"""One run per work directory (a lock that a killed run does not leave
stuck); temporary files of a live run untouched, those of a dead one
removed; a full disk named in one line; ``delete_first``; ``--resume`` with
nothing to resume; SIGTERM naming the last checkpoint."""
import errno
import logging
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from mmengine.logging import MessageHub

from litv2_openmmlab.checkpoint import atomic_write
from litv2_openmmlab.checkpoint.atomic_write import (
    DiskWriteError,
    temp_files,
    write_atomically,
)
from litv2_openmmlab.engine.hooks import AtomicCheckpointHook
from litv2_openmmlab.engine.hooks.work_dir_lock import (
    LOCK_NAME,
    WorkDirBusyError,
    lock_work_dir,
    unlock_work_dir,
)
from tests.tiny_data import REPO

# a process that owns a work directory until it is killed
OWNER = """
import sys, time
from litv2_openmmlab.engine.hooks.work_dir_lock import lock_work_dir
lock_work_dir(sys.argv[1])
print('locked', flush=True)
time.sleep(600)
"""


@pytest.fixture
def owner(tmp_path):
    """A live process holding ``tmp_path / 'work'``."""
    work = tmp_path / 'work'
    proc = subprocess.Popen(
        [sys.executable, '-c', OWNER, str(work)], stdout=subprocess.PIPE,
        text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.stdout.readline().strip() == 'locked'
    yield work, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def fake_runner(work):
    hub = MessageHub.get_instance(f'work_dir_test_{id(work)}')
    return SimpleNamespace(work_dir=str(work), message_hub=hub,
                           logger=logging.getLogger('work_dir_test'))


def test_second_run_stops_naming_directory_and_owner(owner):
    work, proc = owner
    with pytest.raises(WorkDirBusyError) as err:
        lock_work_dir(work)
    message = str(err.value)
    assert str(work) in message and f'pid {proc.pid}' in message
    assert 'on host ' in message and '\n' not in message


def test_train_tool_refuses_a_busy_work_dir_in_one_line(owner):
    work, proc = owner
    run = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'train.py'),
         str(REPO / 'configs' / 'quickstart' / 'retinanet_litv2_toy.py'),
         '--work-dir', str(work)], capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert run.returncode == 1
    assert 'Traceback' not in run.stderr, run.stderr[-3000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith('WorkDirBusyError: work directory')
    assert f'pid {proc.pid}' in last
    assert not (work / 'last_checkpoint').exists()


def test_killed_owner_leaves_no_stale_lock(owner):
    work, proc = owner
    proc.kill()
    proc.wait()
    assert lock_work_dir(work)
    assert f'pid {os.getpid()}' in (work / LOCK_NAME).read_text()
    assert not lock_work_dir(work)  # held already: no second flock
    unlock_work_dir(work)


def test_only_rank_0_takes_the_lock(owner, monkeypatch):
    # the processes of one multi-process run share their work directory
    work, _ = owner
    monkeypatch.setenv('RANK', '1')
    assert lock_work_dir(work) is False


def test_live_runs_temp_files_are_not_touched(owner):
    work, _ = owner
    tmp = work / '.iter_2.pth.abcd1234.tmp'
    tmp.write_bytes(b'being written')
    hook = AtomicCheckpointHook(interval=1)
    with pytest.raises(WorkDirBusyError):
        hook.before_train(fake_runner(work))
    assert tmp.read_bytes() == b'being written'


def test_dead_runs_temp_files_are_removed(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    left = [work / '.iter_4.pth.k2j3h4g5.tmp',
            work / '.epoch_1.pth.a_b9c8d7.tmp',
            work / '.last_checkpoint.x1y2z3w4.tmp']
    kept = [work / 'iter_2.pth', work / '.hidden.tmp', work / 'notes.tmp']
    for path in left + kept:
        path.write_bytes(b'x')
    assert temp_files(work) == sorted(str(p) for p in left)
    hook = AtomicCheckpointHook(interval=1)
    try:
        hook.before_train(fake_runner(work))
    finally:
        hook.after_run(fake_runner(work))
    assert not any(p.exists() for p in left)
    assert all(p.exists() for p in kept)
    assert lock_work_dir(work)  # released by after_run
    unlock_work_dir(work)


# --------------------------------------------------------- full disk ----
def test_disk_full_names_file_needed_and_free(tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(atomic_write.os, 'fsync', no_space)
    monkeypatch.setattr(atomic_write, 'free_space', lambda d: 3 * 2**20)
    target = tmp_path / 'iter_8.pth'
    target.write_bytes(b'old')
    with pytest.raises(DiskWriteError) as err:
        write_atomically(str(target), b'\0' * (5 * 2**20))
    message = str(err.value)
    assert err.value.errno == errno.ENOSPC
    assert str(target) in message and 'ENOSPC' in message
    assert '5.0 MB needed' in message and '3.0 MB free' in message
    assert '\n' not in message
    assert target.read_bytes() == b'old' and not temp_files(tmp_path)


class _Saver:
    """What AtomicCheckpointHook._save_checkpoint_with_step needs of a
    runner: save_checkpoint writes through the atomic backend (or fails)."""

    def __init__(self, work, fail=False):
        self.work_dir, self.fail = str(work), fail
        self.message_hub = MessageHub.get_instance(f'saver_{id(self)}')
        self.seen = []  # files present when each save starts

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        self.seen.append(sorted(os.listdir(out_dir)))
        if self.fail:
            raise DiskWriteError(errno.ENOSPC, f'cannot write {filename}')
        write_atomically(os.path.join(out_dir, filename), b'weights')


@pytest.mark.parametrize('delete_first', [False, True])
def test_delete_first_trades_the_extra_room(tmp_path, delete_first):
    hook = AtomicCheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=1,
                                delete_first=delete_first)
    runner = _Saver(tmp_path)
    hook.out_dir = str(tmp_path)
    from collections import deque
    hook.keep_ckpt_ids = deque(maxlen=1)
    hook.backend_args = dict(backend='atomic_local')
    from mmengine.fileio import get_file_backend
    hook.file_backend = get_file_backend(str(tmp_path),
                                         backend_args=hook.backend_args)
    hook._save_checkpoint_with_step(runner, 1, {})
    hook._save_checkpoint_with_step(runner, 2, {})
    # while iter_2 was written, iter_1 was there only without delete_first
    assert ('iter_1.pth' in runner.seen[1]) is not delete_first
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_2.pth']
    assert (tmp_path / 'last_checkpoint').read_text().endswith('iter_2.pth')
    runner.fail = True
    with pytest.raises(DiskWriteError) as err:
        hook._save_checkpoint_with_step(runner, 3, {})
    assert ('delete_first=True' in str(err.value)) is not delete_first


# ------------------------------------------- SIGTERM, empty --resume ----
@pytest.mark.slow
def test_resume_with_nothing_says_so_and_sigterm_names_checkpoint(tmp_path):
    from tests.tiny_data import make_ade, tiny_seg_config
    cfg = tiny_seg_config(
        tmp_path / 'fpn.py', 'semantic_fpn_litv2_s_ade20k',
        make_ade(tmp_path / 'ade'), iters=50, extra="""
custom_imports = dict(imports=['mmseg_litv2', 'tests.fault_hooks'],
                      allow_failed_imports=False)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=1))
custom_hooks = [dict(type='PauseAtIterHook', at=3, rank=0,
                     marker='{marker}', seconds=600)]
""".replace('{marker}', str(tmp_path / 'paused')))
    work = tmp_path / 'work'
    proc = subprocess.Popen(
        [sys.executable, str(REPO / 'tools' / 'train.py'), str(cfg),
         '--work-dir', str(work), '--resume'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1'))
    deadline = time.time() + 300
    while not (tmp_path / 'paused').exists():
        assert proc.poll() is None and time.time() < deadline, \
            proc.communicate()[1][-3000:]
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert 'no checkpoint to resume from in' in out + err
    last = err.strip().splitlines()[-1]
    assert last == ('TrainingInterrupted: SIGTERM: training stopped at '
                    f'iteration 3; last checkpoint: {work}/iter_2.pth; '
                    'continue with --resume'), err[-3000:]
