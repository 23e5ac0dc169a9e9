"""Whole-detector speed with the project's backbone and with the baseline
backbone (the straightforward reference algorithm), through tools/fps.py.

    python benchmarks/bench_detector.py
        [--config configs/retinanet_litv2_s_w2.py]
        [--shape 800 1280] [--num-images 3] [--warmup 1] [--rounds 2]
        [--markdown FILE]

Both run the same weights (one random checkpoint written first) and the same
random images; the runs alternate (baseline, project, baseline, ...) so that
machine-load drift hits both; the median FPS of the rounds is reported.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# tools/fps.py with the baseline backbone registered first (a config's
# custom_imports given by --cfg-options would come too late to be imported).
RUN_FPS_WITH_BASELINE = (
    'import runpy, sys; sys.argv = sys.argv[1:]; '
    'import litv2_openmmlab.testing.reference_backbone; '
    "runpy.run_path(sys.argv[0], run_name='__main__')")


def random_checkpoint(config: str, path: Path):
    """Initialised weights of the config's model (no pretrained download)."""
    from mmengine.config import Config

    from litv2_openmmlab.engine.runner import detect_task, setup_task
    cfg = Config.fromfile(config)
    task = detect_task(cfg, config)
    setup_task(task)
    registry = __import__(f'{task}.registry', fromlist=['MODELS']).MODELS
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    model = registry.build(cfg.model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict()}, path)


def fps_run(config, checkpoint, args, baseline, json_path):
    cmd = [sys.executable]
    if baseline:
        cmd += ['-c', RUN_FPS_WITH_BASELINE]
    cmd += [str(REPO / 'tools' / 'fps.py'), config,
           str(checkpoint), '--shape', *map(str, args.shape),
           '--num-images', str(args.num_images), '--warmup',
           str(args.warmup), '--json', str(json_path)]
    if baseline:
        cmd += ['--cfg-options', 'model.backbone.type=ReferenceLITv2Backbone']
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return json.loads(Path(json_path).read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default='configs/retinanet_litv2_s_w2.py')
    parser.add_argument('--shape', nargs=2, type=int, default=[800, 1280])
    parser.add_argument('--num-images', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--markdown', help='also write the report here')
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / 'random.pth'
        random_checkpoint(args.config, ckpt)
        fps = dict(baseline=[], project=[])
        for _ in range(args.rounds):
            for name in fps:
                result = fps_run(args.config, ckpt, args, name == 'baseline',
                                 Path(tmp) / f'{name}.json')
                fps[name].append(result['fps'])
                print(f'{name}: {result["fps"]:.3f} FPS', flush=True)
    base, proj = (statistics.median(fps[k]) for k in ('baseline', 'project'))
    lines = [
        f'`{args.config}`, random images {args.shape[0]}x{args.shape[1]}, '
        f'batch 1, {args.num_images} images after {args.warmup} warm-up, '
        f'median of {args.rounds} alternating rounds, '
        f'{result["device"]} ({result["device_name"]}), '
        f'{result["threads"]} threads, fp32', '',
        '| backbone | FPS | ms / image |', '|---|---|---|',
        f'| baseline (reference algorithm) | {base:.3f} | {1000 / base:.0f} |',
        f'| project | {proj:.3f} | {1000 / proj:.0f} |', '',
        f'Whole-detector speed-up: {proj / base:.2f}x']
    print('\n'.join(lines))
    if args.markdown:
        Path(args.markdown).write_text('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
