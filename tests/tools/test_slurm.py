"""tools/slurm_train.sh and tools/slurm_test.sh against a simulated Slurm:
stand-ins for ``srun`` (runs ``--ntasks`` copies of the command with the
``SLURM_*`` variables a real one sets, and records its arguments) and
``scontrol show hostnames``. Two CPU tasks train a tiny Semantic FPN over
gloo and test its checkpoint. ``make slurm-check`` runs the same scripts on
a real single-node Slurm (tools/slurm_local.sh)."""
import os
import socket
import subprocess
import sys

import pytest

from tests.tiny_data import REPO, make_ade, tiny_seg_config

SRUN = r'''#!/usr/bin/env bash
# stand-in srun: record the arguments, run --ntasks copies of the command
echo "$@" >> "$SRUN_LOG"
[ -n "${SRUN_DRY:-}" ] && exit 0
ntasks=1
while [ $# -gt 0 ]; do
    case "$1" in
        --ntasks=*) ntasks=${1#--ntasks=}; shift ;;
        -*) shift ;;
        *) break ;;
    esac
done
pids=()
for ((i = 0; i < ntasks; i++)); do
    SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NTASKS=$ntasks \
    SLURM_NODELIST=localhost SLURM_JOB_ID=7 "$@" &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
'''
SCONTROL = r'''#!/usr/bin/env bash
[ "$1 $2" = "show hostnames" ] && echo localhost
'''


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def slurm_env(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, text in (('srun', SRUN), ('scontrol', SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / 'srun_args.txt'
    path = os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable),
                            os.environ['PATH']])
    # CPU tasks on a GPU machine too (NCCL would need a GPU per task)
    return log, dict(os.environ, PATH=path, SRUN_LOG=str(log),
                     CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')


def run(script, *args, env):
    return subprocess.run(['bash', str(REPO / 'tools' / script), *args],
                          env=env, capture_output=True, text=True,
                          timeout=300)


def test_srun_gets_mmdets_interface(slurm_env):
    log, env = slurm_env
    env.update(SRUN_DRY='1', GPUS='16', GPUS_PER_NODE='8',
               CPUS_PER_TASK='4', SRUN_ARGS='--exclusive --time=10')
    assert run('slurm_train.sh', 'part', 'job', 'cfg.py', 'work',
               '--amp', env=env).returncode == 0
    assert run('slurm_test.sh', 'part', 'job', 'cfg.py', 'ckpt.pth',
               env=env).returncode == 0
    train, test = log.read_text().splitlines()
    for line in (train, test):
        assert line.startswith('--partition=part --job-name=job '
                               '--gres=gpu:8 --ntasks=16 '
                               '--ntasks-per-node=8 --cpus-per-task=4 '
                               '--kill-on-bad-exit=1 --exclusive --time=10 '
                               'python -u ')
        assert '--launcher=slurm' in line
    assert train.endswith('tools/train.py cfg.py --work-dir=work '
                          '--launcher=slurm --amp')
    assert test.endswith('tools/test.py cfg.py ckpt.pth --launcher=slurm')
    usage = run('slurm_train.sh', 'part', 'job', env=env)
    assert usage.returncode == 2 and 'usage:' in usage.stderr


@pytest.mark.heavy
def test_two_cpu_tasks_train_and_test(slurm_env, tmp_path):
    log, env = slurm_env
    cfg = tiny_seg_config(tmp_path / 'fpn.py', 'semantic_fpn_litv2_s_ade20k',
                          make_ade(tmp_path / 'ade', num_images=4))
    env.update(GPUS='2', GPUS_PER_NODE='0', CPUS_PER_TASK='1',
               MASTER_PORT=str(free_port()))
    work_dir = tmp_path / 'work'
    train = run('slurm_train.sh', 'debug', 'litv2', str(cfg), str(work_dir),
                env=env)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert '--gres' not in log.read_text()
    logs = ''.join(p.read_text() for p in work_dir.glob('*/*.log'))
    assert 'Distributed training: True' in logs and 'GPU number: 2' in logs
    assert (work_dir / 'iter_2.pth').is_file()

    env['MASTER_PORT'] = str(free_port())
    test = run('slurm_test.sh', 'debug', 'litv2', str(cfg),
               str(work_dir / 'iter_2.pth'), '--work-dir',
               str(tmp_path / 'test'), env=env)
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    assert 'mIoU' in ''.join(p.read_text()
                             for p in (tmp_path / 'test').glob('*/*.log'))
