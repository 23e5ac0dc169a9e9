"""Two "machines" on localhost: tools/dist_train.sh started twice with
NNODES=2 and NODE_RANK=0 / 1 (one process each, gloo on the CPU), the way a
two-node job is started; then tools/test.py on its checkpoint. A node killed
with SIGKILL mid-run: the other stops (bounded time, a message) instead of
hanging, and --resume on both nodes continues exactly as the single-machine
resume does. DDP sees gradients in the layout of its buckets (no "Grad
strides do not match bucket view strides")."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from litv2_openmmlab import LITv2
from litv2_openmmlab.checkpoint import load_from_file_weights_only
from tests.tiny_data import REPO, make_ade
from tests.training.test_resume import assert_bit_equal, config
from tests.utils import tiny_kwargs

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(),
                            reason='two CPU nodes over gloo')
STRIDE_WARNING = 'Grad strides do not match bucket view strides'
# Every collective operation waits at most this long (env_cfg.dist_cfg):
# the bound for a node that stops answering without closing its connections.
# A killed node's connections close, and gloo fails at once ("Connection
# closed by peer"); the survivor must stop within the bound plus the time to
# shut its torchrun agent down either way. 15 s (measured on the idle
# 2-vCPU AMD EPYC: a killed node stopped the other 2.2 s after, a silent one
# 16.6 s after; an uninterrupted run never waited that long).
TIMEOUT_S = 15
STOP_BOUND_S = TIMEOUT_S + 30


# ----------------------------------------------------- gradient layout ----
def test_depthwise_weights_have_the_strides_of_their_gradients(one_thread):
    """DDP's bucket view of a parameter has the parameter's strides; the
    ConvFFN depthwise conv's weight gradient comes back channels-last. They
    must agree, and the layout must not change any value."""
    torch.manual_seed(0)
    model = LITv2(**tiny_kwargs())
    x = torch.randn(1, 3, 64, 64)
    sum(o.sum() for o in model(x)).backward()
    convs = [m for n, m in model.named_modules()
             if n.endswith('mlp.dwconv.dwconv')]
    assert convs
    for conv in convs:
        assert conv.weight.grad.stride() == conv.weight.stride()

    # the same weights in the default (contiguous) strides: equal outputs
    # and gradients, to the bit
    other = LITv2(**tiny_kwargs())
    other.load_state_dict(model.state_dict())
    for conv in [m for n, m in other.named_modules()
                 if n.endswith('mlp.dwconv.dwconv')]:
        conv.weight.data = conv.weight.data.contiguous().as_strided(
            conv.weight.shape, (9, 9, 3, 1))
    model.zero_grad()
    outs = model(x)
    sum(o.sum() for o in outs).backward()
    other_outs = other(x)
    sum(o.sum() for o in other_outs).backward()
    for a, b in zip(outs, other_outs):
        assert torch.equal(a, b)
    for (name, p), q in zip(model.named_parameters(), other.parameters()):
        assert torch.equal(p.grad, q.grad), name


# ------------------------------------------------------- two machines ----
def _port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_nodes(cfg, work_dir, *args, name=None):
    """``tools/dist_train.sh CFG 1`` as node 0 and node 1 of a 2-node job
    (each in its own session, so that a node can be killed whole); their
    output goes to ``<name>_node<rank>.txt`` beside ``work_dir``."""
    port = _port()
    name = name or work_dir.name
    nodes = []
    for rank in (0, 1):
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1',
                   NNODES='2', NODE_RANK=str(rank), MASTER_ADDR='127.0.0.1',
                   PORT=str(port), TORCHRUN=os.path.join(
                       os.path.dirname(sys.executable), 'torchrun'),
                   CUDA_VISIBLE_DEVICES='')  # CPU nodes on a GPU machine too
        log = open(work_dir.parent / f'{name}_node{rank}.txt', 'w')
        nodes.append((subprocess.Popen(
            ['bash', str(REPO / 'tools' / 'dist_train.sh'), str(cfg), '1',
             '--work-dir', str(work_dir), *args], env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True), log))
    return nodes


def wait_nodes(nodes, timeout=400):
    """Return codes and outputs of the nodes; kill them after ``timeout``."""
    codes, outputs = [], []
    deadline = time.monotonic() + timeout
    for proc, log in nodes:
        try:
            proc.wait(max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        codes.append(proc.returncode)
        outputs.append(open(log.name).read())
    return codes, outputs


def weights(path):
    return load_from_file_weights_only(path)['state_dict']


def kill_leftovers(nodes, marker):
    """After a failed test: kill the nodes' agents and node 1's paused
    worker (whose pid the marker holds); node 0's worker ends at its
    timeout."""
    for proc, _ in nodes:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if marker.exists() and marker.read_text():
        try:
            os.kill(int(marker.read_text()), signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope='module')
def two_node_run(tmp_path_factory):
    """4 iterations (checkpoints every 2) on two nodes, uninterrupted."""
    root = tmp_path_factory.mktemp('two_nodes')
    data = make_ade(root / 'ade', num_images=4)
    cfg = config(root / 'fpn.py', data, iters=4)
    codes, outputs = wait_nodes(start_nodes(cfg, root / 'full'))
    return root, data, cfg, codes, outputs


@pytest.mark.heavy
@NO_GPU
def test_two_nodes_train_then_test(two_node_run):
    root, _, cfg, codes, outputs = two_node_run
    assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    log = '\n'.join(p.read_text() for p in (root / 'full').rglob('*.log'))
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    for output in outputs:  # DDP copies no gradient into its buckets
        assert STRIDE_WARNING not in output
    assert (root / 'full' / 'iter_4.pth').is_file()

    run = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'test.py'), str(cfg),
         str(root / 'full' / 'iter_4.pth'), '--work-dir', str(root / 'test')],
        env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
        text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert 'mIoU' in run.stdout + run.stderr


def _kill_node_1_and_wait(nodes, marker, work):
    """Kill node 1 whole once it pauses at iteration 3; node 0 must stop
    within STOP_BOUND_S with the one-line message."""
    (node0, _), (node1, _) = nodes
    deadline = time.monotonic() + 400
    while not marker.exists() and time.monotonic() < deadline:
        assert node0.poll() is None and node1.poll() is None
        time.sleep(0.5)
    assert marker.exists(), 'node 1 never reached iteration 3'
    time.sleep(2)  # node 0 is now waiting for node 1's gradients
    # the whole node: torchrun's agent and its worker (which torchrun starts
    # in a session of its own)
    os.killpg(node1.pid, signal.SIGKILL)
    os.kill(int(marker.read_text()), signal.SIGKILL)
    killed_at = time.monotonic()
    try:
        node0.wait(STOP_BOUND_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f'node 0 still runs {STOP_BOUND_S} s after node 1 died')
    stopped_after = time.monotonic() - killed_at
    codes, outputs = wait_nodes(nodes, timeout=10)
    print(f'node 0 stopped {stopped_after:.1f} s after node 1 was killed')
    assert codes[0] != 0
    # one line: what failed, the bound, the checkpoint to resume from
    assert ('DistributedError: rank 0 of 2: a collective operation failed'
            in outputs[0]), outputs[0][-3000:]
    assert f'env_cfg.dist_cfg.timeout = {TIMEOUT_S} s' in outputs[0]
    assert f'Last checkpoint: {work / "iter_2.pth"}' in outputs[0]
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')
    assert not (work / 'iter_4.pth').exists()
    # the random states of both processes, for an exact resume
    assert len(load_from_file_weights_only(
        work / 'iter_2.pth')['rng_states']) == 2


@pytest.mark.heavy
@NO_GPU
def test_killed_node_stops_the_other_then_both_resume(two_node_run):
    root, data, cfg, codes, _ = two_node_run
    assert codes == [0, 0]
    marker = root / 'node1_pauses'
    killed_cfg = config(root / 'kill.py', data, iters=4, hooks=[dict(
        type='PauseAtIterHook', at=3, rank=1, marker=str(marker))])
    work = root / 'killed'
    nodes = start_nodes(killed_cfg, work, '--cfg-options',
                        f'env_cfg.dist_cfg.timeout={TIMEOUT_S}')
    try:
        _kill_node_1_and_wait(nodes, marker, work)
    finally:
        kill_leftovers(nodes, marker)

    # both nodes again, --resume: from iteration 2, and the very weights of
    # the uninterrupted run
    codes, outputs = wait_nodes(start_nodes(cfg, work, '--resume',
                                            name='resumed'))
    assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert 'resumed epoch: 0, iter: 2' in outputs[0]
    assert_bit_equal(weights(work / 'iter_4.pth'),
                     weights(root / 'full' / 'iter_4.pth'))


@pytest.mark.heavy
@NO_GPU
def test_silent_node_stops_the_other_after_the_timeout(two_node_run):
    """A node that stops answering but keeps its connections open (hung,
    frozen, cut off): the survivor waits env_cfg.dist_cfg.timeout, then stops
    with the same one-line message."""
    root, data, _, codes, _ = two_node_run
    marker = root / 'node1_hangs'
    cfg = config(root / 'hang.py', data, iters=4, hooks=[dict(
        type='PauseAtIterHook', at=3, rank=1, marker=str(marker))])
    work = root / 'hung'
    nodes = start_nodes(cfg, work, '--cfg-options',
                        f'env_cfg.dist_cfg.timeout={TIMEOUT_S}')
    try:
        _wait_for_the_timeout(nodes, marker)
    finally:
        kill_leftovers(nodes, marker)


def _wait_for_the_timeout(nodes, marker):
    """Node 1 pauses at iteration 3 (alive, connections open); node 0 must
    stop after the timeout, within STOP_BOUND_S, with the one-line
    message."""
    (node0, _), (node1, _) = nodes
    deadline = time.monotonic() + 400
    while not marker.exists() and time.monotonic() < deadline:
        assert node0.poll() is None and node1.poll() is None
        time.sleep(0.5)
    assert marker.exists(), 'node 1 never reached iteration 3'
    hung_at = time.monotonic()
    try:
        node0.wait(STOP_BOUND_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f'node 0 still runs {STOP_BOUND_S} s after node 1 hung')
    stopped_after = time.monotonic() - hung_at
    kill_leftovers(nodes, marker)
    codes, outputs = wait_nodes(nodes, timeout=10)
    print(f'node 0 stopped {stopped_after:.1f} s after node 1 hung')
    assert codes[0] != 0
    assert 'DistributedError: rank 0 of 2' in outputs[0], outputs[0][-3000:]
    assert 'Timed out' in outputs[0]
    assert stopped_after >= TIMEOUT_S - 5  # it was the timeout that ended it
