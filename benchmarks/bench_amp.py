"""bf16 autocast against fp32 on this machine: speed and what it costs in
accuracy, side by side.

    python benchmarks/bench_amp.py [--archs s m b] [--window 2]
        [--shape 800 1280] [--repeat 3]
        [--config configs/retinanet_litv2_s_w2.py]
        [--num-images 3] [--rounds 2] [--no-detector] [--markdown FILE]

Backbone: the paper's LITv2-S/M/B with weights as a trained model has them
(litv2/testing/amp_accuracy.py), batch 1, eval, no grad; fp32 and bf16 autocast
alternate in one process and the median of the repeats is reported, with the
per-stage mean relative error of bf16 (and fp16) autocast against fp32 (the
quantity tests/model/test_mixed_precision.py bounds). fp16 is timed nowhere
on a CPU: CPUs have no fp16 arithmetic to speak of. Whole detector:
tools/fps.py on ``--config`` with random weights, ``fp32`` and ``--amp bf16``
alternating.
On a CPU without bf16 arithmetic (no AVX512-BF16 / AMX) the bf16 columns are
left out: torch would emulate it.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks.bench_detector import random_checkpoint  # noqa: E402
from benchmarks.machine import (  # noqa: E402
    cpu_description,
    cpu_ticks,
    steal_share,
)
from litv2.testing.amp_accuracy import (  # noqa: E402
    autocast_stage_errors,
    trained_like_backbone,
)
from litv2_openmmlab.engine.optim import cpu_bf16_support  # noqa: E402


def time_backbone(model, images, repeat, bf16):
    """Median seconds of fp32 and of bf16 autocast, alternating."""
    modes = {'fp32': None}
    if bf16:
        modes['bf16'] = torch.bfloat16
    times = {k: [] for k in modes}
    with torch.no_grad():
        for round_ in range(repeat + 1):  # the first round warms up
            for name, dtype in modes.items():
                with torch.autocast('cpu', dtype=dtype or torch.float32,
                                    enabled=dtype is not None):
                    start = time.perf_counter()
                    model(images)
                    elapsed = time.perf_counter() - start
                if round_:
                    times[name].append(elapsed)
    return {k: statistics.median(v) for k, v in times.items()}


def fps_run(config, checkpoint, args, amp, json_path):
    cmd = [sys.executable, str(REPO / 'tools' / 'fps.py'), config,
           str(checkpoint), '--shape', *map(str, args.shape), '--device',
           'cpu', '--num-images', str(args.num_images), '--warmup',
           str(args.warmup), '--json', str(json_path)]
    if amp:
        cmd += ['--amp', amp]
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return json.loads(Path(json_path).read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--archs', nargs='+', default=['s', 'm', 'b'])
    parser.add_argument('--window', type=int, default=2)
    parser.add_argument('--shape', nargs=2, type=int, default=[800, 1280])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--config', default='configs/retinanet_litv2_s_w2.py')
    parser.add_argument('--num-images', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--no-detector', action='store_true')
    parser.add_argument('--threads', type=int)
    parser.add_argument('--markdown', help='also write the report here')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bf16, found = cpu_bf16_support()
    h, w = args.shape
    lines = [f'{cpu_description()}, {torch.get_num_threads()} threads, '
             'torch '
             f'{torch.__version__}; bf16 arithmetic: '
             f'{"yes" if bf16 else "no"} ({found})', '',
             f'Backbone, 1x3x{h}x{w}, window {args.window}, trained-like '
             f'weights; median of {args.repeat} alternating runs; error per '
             'stage = mean |amp - fp32| / mean |fp32|:', '',
             '| backbone | fp32 s | bf16 s | bf16 speed-up | bf16 error '
             f'(stages 1-4) | fp16 error (stages 1-4, 99x{w + 3}) |',
             '|---|---|---|---|---|---|']
    print(lines[0], flush=True)
    ticks = cpu_ticks()
    images = torch.randn(1, 3, h, w,
                         generator=torch.Generator().manual_seed(0))
    strip = torch.randn(1, 3, 99, w + 3,
                        generator=torch.Generator().manual_seed(1))
    for arch in args.archs:
        model = trained_like_backbone(arch, args.window)
        with torch.no_grad():
            reference = model(images)
        errors = {torch.bfloat16: autocast_stage_errors(
            model, images, torch.bfloat16, reference)}
        # fp16 on a strip of the full width (the tests' FP16_SIZES): CPUs
        # have no fast fp16 depthwise conv, and the width decides how far
        # DTM's sampling positions reach
        errors[torch.float16] = autocast_stage_errors(
            model, strip, torch.float16)
        t = time_backbone(model, images, args.repeat, bf16)
        fmt = lambda errs: ' / '.join(f'{e:.4f}' for e in errs)  # noqa: E731
        row = (f'| LITv2-{arch.upper()} | {t["fp32"]:.2f} | '
               + (f'{t["bf16"]:.2f} | {t["fp32"] / t["bf16"]:.2f}x | '
                  if bf16 else 'n/a | n/a | ')
               + f'{fmt(errors[torch.bfloat16])} | '
               f'{fmt(errors[torch.float16])} |')
        lines.append(row)
        print(row, flush=True)
        del model, reference
    if not args.no_detector:
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = Path(tmp) / 'random.pth'
            random_checkpoint(args.config, ckpt)
            modes = ['fp32'] + (['bf16'] if bf16 else [])
            fps = {m: [] for m in modes}
            for _ in range(args.rounds):
                for mode in modes:
                    result = fps_run(args.config, ckpt, args,
                                     None if mode == 'fp32' else mode,
                                     Path(tmp) / f'{mode}.json')
                    fps[mode].append(result['fps'])
                    print(f'{mode}: {result["fps"]:.3f} FPS', flush=True)
        med = {m: statistics.median(v) for m, v in fps.items()}
        lines += ['', f'Whole detector, `tools/fps.py {args.config} CKPT '
                  f'--shape {h} {w} [--amp bf16]` (random weights, '
                  f'{args.num_images} images after {args.warmup} warm-up, '
                  f'median of {args.rounds} alternating rounds):', '',
                  '| mode | FPS | ms / image |', '|---|---|---|']
        lines += [f'| {m} | {v:.3f} | {1000 / v:.0f} |'
                  for m, v in med.items()]
        if bf16:
            lines += ['', f'bf16 speed-up: {med["bf16"] / med["fp32"]:.2f}x']
    stolen = steal_share(ticks, cpu_ticks())
    lines += ['', f'CPU time stolen by the hypervisor during the runs: '
              f'{100 * stolen:.1f}%.']
    print('\n'.join(lines[-8:]))
    if args.markdown:
        Path(args.markdown).write_text('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
