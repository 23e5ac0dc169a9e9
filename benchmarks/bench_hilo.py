"""Speed of the project's LITv2 backbone against the straightforward
reference algorithm (litv2/testing/reference.py), on identical weights.

    python benchmarks/bench_hilo.py [--archs s m b] [--windows 2] [--repeat 5]
        [--infer-shape 800 1280] [--train-shape 512 512] [--threads N]
        [--profile] [--memory] [--markdown FILE]

Inference: batch 1, fp32, eval mode, no grad. Training step: batch 2,
forward + backward of the sum of squared outputs, train mode. The models
run alternately (baseline, project, no-HiLo, baseline, ...) in one process so
that machine-load drift hits all of them; the median of the repeats is
reported, with the maximum relative difference of outputs (and of gradients
for training).
A third model runs in the same interleaving: the project's architecture with
no HiLo layer at all (``local_ws`` 0 everywhere: ConvFFN blocks, DTM, norms).
Its time is the part of a step that no attention speed-up can remove, so
``baseline / no-HiLo`` bounds the speed-up any HiLo implementation can give.
The share of CPU time the hypervisor stole during the timed runs (Linux
``/proc/stat``) is printed: a large value means the figures are noisy.
``--memory`` runs each model alone in a fresh process and reports the peak
resident memory that one inference / training step adds (Linux VmHWM, reset
after the model is built).
"""
import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.flop_count import count_macs  # noqa: E402
from benchmarks.machine import cpu_ticks, steal_share  # noqa: E402
from litv2 import LITV2_ARCHS, local_windows  # noqa: E402
from litv2.testing.reference import (  # noqa: E402
    DeformConv2x2,
    build_reference_backbone,
    randomize_,
)
from litv2_openmmlab import LITv2  # noqa: E402


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def build_hilo_free(arch):
    """The project's backbone of ``arch`` with every block attention-free."""
    cfg = dict(LITV2_ARCHS[arch], alpha=0.9, local_ws=(0, 0, 0, 0))
    return LITv2(**cfg, drop_path_rate=0.0)






def build_pair(arch, window, seed=0):
    cfg = dict(LITV2_ARCHS[arch], alpha=0.9, local_ws=local_windows(window))
    baseline = randomize_(build_reference_backbone(**cfg), seed)
    for m in baseline.modules():
        if isinstance(m, DeformConv2x2):
            m.direct = False  # compiled op, as the reference uses
    project = LITv2(**cfg, drop_path_rate=0.0)
    project.load_state_dict(baseline.state_dict(), strict=True)
    return baseline, project


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_inference(baseline, project, hilo_free, shape, repeat):
    x = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(0))
    models = dict(baseline=baseline.eval(), project=project.eval(),
                  hilo_free=hilo_free.eval())
    times = {k: [] for k in models}
    outs = {}
    with torch.no_grad():
        for k, m in models.items():  # warm-up
            outs[k] = m(x)
        for _ in range(repeat):
            for k, m in models.items():
                t, _ = timed(lambda: m(x))
                times[k].append(t)
    err = max(rel_err(a, b) for a, b in zip(outs['project'], outs['baseline']))
    return {k: statistics.median(v) for k, v in times.items()}, err


def bench_training(baseline, project, hilo_free, shape, repeat):
    x = torch.randn(2, 3, *shape, generator=torch.Generator().manual_seed(0))
    models = dict(baseline=baseline.train(), project=project.train(),
                  hilo_free=hilo_free.train())

    def step(m):
        m.zero_grad(set_to_none=True)
        outs = m(x)
        sum(o.square().mean() for o in outs).backward()
        return outs

    times = {k: [] for k in models}
    for k, m in models.items():  # warm-up
        step(m)
    state = {k: {n: b.clone() for n, b in m.named_buffers()}
             for k, m in models.items()}
    for _ in range(repeat):
        for k, m in models.items():
            t, _ = timed(lambda: step(m))
            times[k].append(t)
    # Gradients of one more step from identical BN statistics.
    del models['hilo_free']
    for k, m in models.items():
        m.load_state_dict(state[k], strict=False)
        step(m)
    # Relative to the largest gradient of the model: the biases just before
    # a train-mode BatchNorm have an exactly-zero gradient, i.e. pure noise.
    base = dict(models['baseline'].named_parameters())
    scale = max(p.grad.abs().max() for p in base.values())
    err = max((p.grad - base[n].grad).abs().max() / scale
              for n, p in models['project'].named_parameters()).item()
    return {k: statistics.median(v) for k, v in times.items()}, err


def _vm_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def peak_step_memory(which, mode, arch, window, shape):
    """MiB of resident memory one step of one model adds at its peak."""
    baseline, project = build_pair(arch, window)
    model = baseline if which == 'baseline' else project
    del baseline, project
    x = torch.randn(1 if mode == 'inference' else 2, 3, *shape)
    model.train(mode == 'train')
    gc.collect()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # resets VmHWM, the peak resident set size, to now
    before = _vm_kib('VmRSS')
    if mode == 'inference':
        with torch.no_grad():
            model(x)
    else:
        sum(o.square().mean() for o in model(x)).backward()
    return (_vm_kib('VmHWM') - before) / 1024


def bench_memory(arch, window, mode, shape):
    """Peak memory of each model in a fresh process (no allocator reuse)."""
    peaks = {}
    for which in ('baseline', 'project'):
        out = subprocess.run(
            [sys.executable, __file__, '--memory-child', which, mode, arch,
             str(window), str(shape[0]), str(shape[1])],
            check=True, capture_output=True, text=True).stdout
        peaks[which] = json.loads(out.strip().splitlines()[-1])
    return peaks


def matmul_peak(n=2048, repeat=5):
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(timed(lambda: a @ b)[0] for _ in range(repeat))
    return 2 * n**3 / best / 1e9


def profile_summary(model, shape, top=12):
    """Top ops by self CPU time, and the achieved FLOP rate of the model."""
    x = torch.randn(1, 3, *shape)
    model.eval()
    with torch.no_grad():
        macs = count_macs(lambda: model(x))
        elapsed, _ = timed(lambda: model(x))
        with torch.profiler.profile() as prof:
            model(x)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    rows = ['| op | self CPU ms | share |', '|---|---|---|']
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        rows.append(f'| {e.key} | {e.self_cpu_time_total / 1e3:.0f} | '
                    f'{100 * e.self_cpu_time_total / total:.1f}% |')
    return '\n'.join(rows), 2 * macs, elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--archs', nargs='+', default=['s', 'm', 'b'])
    parser.add_argument('--windows', nargs='+', type=int, default=[2])
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--infer-shape', nargs=2, type=int,
                        default=[800, 1280])
    parser.add_argument('--train-shape', nargs=2, type=int, default=[512, 512])
    parser.add_argument('--no-train', action='store_true')
    parser.add_argument('--threads', type=int)
    parser.add_argument('--profile', action='store_true',
                        help='per-op profile of the project model (first '
                        'arch)')
    parser.add_argument('--memory', action='store_true',
                        help='peak memory of each model, each in a fresh '
                        'process')
    parser.add_argument('--memory-child', nargs=6, help=argparse.SUPPRESS)
    parser.add_argument('--markdown', help='also write the report here')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        which, mode, arch, window, h, w = args.memory_child
        print(json.dumps(peak_step_memory(which, mode, arch, int(window),
                                          (int(h), int(w)))))
        return

    lines = [f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
             f'fp32 matmul peak (2048^3): {matmul_peak():.0f} GFLOP/s', '',
             '| model | mode | input | baseline s | project s | speed-up | '
             'no-HiLo s | bound | max rel. diff |',
             '|---|---|---|---|---|---|---|---|---|']
    print(lines[0], flush=True)
    ticks_start = cpu_ticks()
    for arch in args.archs:
        hilo_free = build_hilo_free(arch)
        for window in args.windows:
            baseline, project = build_pair(arch, window)
            name = f'LITv2-{arch.upper()} w{window}'
            runs = [('inference', 1, args.infer_shape, bench_inference)]
            if not args.no_train:
                runs.append(('train step', 2, args.train_shape,
                             bench_training))
            for mode, batch, shape, bench in runs:
                t, err = bench(baseline, project, hilo_free, shape,
                               args.repeat)
                row = (f'| {name} | {mode} | {batch}x3x{shape[0]}x{shape[1]} '
                       f'| {t["baseline"]:.2f} | {t["project"]:.2f} | '
                       f'{t["baseline"] / t["project"]:.2f}x | '
                       f'{t["hilo_free"]:.2f} | '
                       f'{t["baseline"] / t["hilo_free"]:.2f}x | {err:.1e} |')
                lines.append(row)
                print(row, flush=True)
    stolen = steal_share(ticks_start, cpu_ticks())
    lines += ['', f'Median of {args.repeat} interleaved runs. no-HiLo: the '
              'same backbone without any HiLo layer (what no attention '
              'speed-up can remove); bound = baseline / no-HiLo. CPU time '
              'stolen by the hypervisor during the runs: '
              f'{100 * stolen:.1f}%.']
    print(lines[-1], flush=True)
    if args.memory:
        lines += ['', 'Peak resident memory added by one step (MiB, each '
                  'model alone in a fresh process):', '',
                  '| model | mode | input | baseline | project |',
                  '|---|---|---|---|---|']
        for arch in args.archs:
            for window in args.windows:
                runs = [('inference', args.infer_shape, 1)]
                if not args.no_train:
                    runs.append(('train', args.train_shape, 2))
                for mode, shape, batch in runs:
                    peaks = bench_memory(arch, window, mode, shape)
                    row = (f'| LITv2-{arch.upper()} w{window} | {mode} | '
                           f'{batch}x3x{shape[0]}x{shape[1]} | '
                           f'{peaks["baseline"]:.0f} | '
                           f'{peaks["project"]:.0f} |')
                    lines.append(row)
                    print(row, flush=True)
    if args.profile:
        _, project = build_pair(args.archs[0], args.windows[0])
        table, flops, elapsed = profile_summary(project, args.infer_shape)
        peak = matmul_peak()
        lines += ['', f'Profile of the project model, LITv2-'
                  f'{args.archs[0].upper()} w{args.windows[0]}, inference '
                  f'{args.infer_shape[0]}x{args.infer_shape[1]}: '
                  f'{flops / 1e9:.1f} GFLOP (matmul/conv/attention, 2 per '
                  f'multiply-add) in {elapsed:.2f} s = '
                  f'{flops / elapsed / 1e9:.0f} GFLOP/s, '
                  f'{100 * flops / elapsed / 1e9 / peak:.0f}% of the '
                  f'{peak:.0f} GFLOP/s matmul peak measured now.', '', table]
        print('\n'.join(lines[-3:]))
    if args.markdown:
        Path(args.markdown).write_text('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
