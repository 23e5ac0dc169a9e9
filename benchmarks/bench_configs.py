"""Params, FLOPs and CPU FPS of the paper's 15 configs, as a markdown table.

    python benchmarks/bench_configs.py [--configs NAME ...] [--num-images 3]
        [--warmup 1] [--markdown benchmarks/results_configs.md]

For every config: ``tools/get_flops.py`` (paper-comparable and complete
FLOPs) and ``tools/fps.py`` on random images of the paper's input size
(1280x800 detection, 512x512 segmentation), random weights, each in its own
process (so that the peak memory is the config's own).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks.machine import cpu_description  # noqa: E402
from litv2.paper_figures import PAPER_TABLES  # noqa: E402
from litv2_openmmlab.apis import PAPER_SHAPES  # noqa: E402


def run_tool(tool, args, out):
    cmd = [sys.executable, str(REPO / 'tools' / tool)] + args + [
        '--json', str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f'{" ".join(cmd)} failed:\n{proc.stderr[-3000:]}')
    return json.loads(out.read_text())




def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--configs', nargs='+', default=list(PAPER_TABLES),
                        choices=list(PAPER_TABLES), metavar='NAME')
    parser.add_argument('--num-images', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--markdown',
                        default=str(REPO / 'benchmarks/results_configs.md'))
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    start = time.time()
    flops, fps = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        # all FLOPs first (deterministic), then the FPS; the table is
        # rewritten after each step so that an interrupted run leaves one
        for name in args.configs:
            flops[name] = run_tool('get_flops.py', [f'configs/{name}.py'],
                                   Path(tmp) / 'f.json')
            write_table(args, flops, fps, load_before, start)
        for name in args.configs:
            h, w = PAPER_SHAPES[task_of(name)]
            fps[name] = run_tool('fps.py', [
                f'configs/{name}.py', '--shape', str(h), str(w),
                '--num-images', str(args.num_images), '--warmup',
                str(args.warmup)
            ], Path(tmp) / 's.json')
            write_table(args, flops, fps, load_before, start)
    print(f'wrote {args.markdown}')


def task_of(name):
    return 'mmseg' if name.startswith('semantic_fpn') else 'mmdet'


def row(name, flops, fps):
    h, w = PAPER_SHAPES[task_of(name)]
    params_m, flops_g, fps_gpu = PAPER_TABLES[name]
    diff = 100 * (flops['flops'] / 1e9 / flops_g - 1)
    cpu = (f'{fps["fps"]:.2f} | {fps["ms_per_image"]:.0f} | '
           f'{fps["peak_memory_mib"]:.0f}' if fps else 'not run | | ')
    return (f'| `{name}` | {w}x{h} | {flops["params"] / 1e6:.2f} '
            f'({params_m}) | {flops["flops"] / 1e9:.2f} '
            f'| {flops["flops_complete"] / 1e9:.2f} | {flops_g} '
            f'| {diff:+.2f}% | {cpu} | {fps_gpu} |')


def write_table(args, flops, fps, load_before, start):
    load_after = os.getloadavg()
    minutes = (time.time() - start) / 60
    threads = next(iter(fps.values()))['threads'] if fps else '-'
    rows = [row(name, flops[name], fps.get(name)) for name in flops]
    text = f"""\
# Params, FLOPs and CPU FPS of the paper's configs

`make bench` (`benchmarks/bench_configs.py`), {datetime.date.today()}:
{cpu_description()}, {os.cpu_count()} CPU cores, no GPU, torch {_torch()} with \
{threads} threads, fp32, random weights. Load average (1 min) \
{load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end \
({minutes:.0f} min; above the thread count means other jobs shared the \
cores, and the FPS figures are then indicative only). Without a checkpoint \
the heads keep PyTorch's default initialisation, so the detectors' \
post-processing sees many more candidate boxes than a trained model's.

FLOPs (G): multiply-adds at the paper's input size, `tools/get_flops.py`;
"paper-comparable" leaves out DTM's deformable convolutions as the paper's
counter did, "complete" counts them; diff: paper-comparable against the
paper's rounded figure. FPS: `tools/fps.py`, batch 1, {args.warmup} warm-up \
+ {args.num_images} timed images, random images of the input size, forward \
with post-processing. Paper FPS: RTX 3090.

| config | input (WxH) | params (M) (paper) | FLOPs paper-comparable | FLOPs complete | paper FLOPs | diff | FPS (CPU) | ms / image | peak RSS (MiB) | paper FPS (GPU) |
|---|---|---|---|---|---|---|---|---|---|---|
""" + '\n'.join(rows) + '\n'  # noqa: E501
    Path(args.markdown).write_text(text)
    print(rows[-1], flush=True)


def _torch():
    import torch
    return torch.__version__


if __name__ == '__main__':
    main()
