#!/usr/bin/env python
"""Inference speed (FPS) of a LITv2 detector or segmentor, measured as mmdet's
own benchmark measures it (the method behind the paper's FPS column).

    python tools/fps.py CONFIG [CHECKPOINT] [--num-images N] [--warmup W]
        [--repeat R] [--shape H [W]] [--device cpu|cuda] [--amp bf16|fp16]
        [--compile [MODE]] [--json FILE] [--cfg-options ...]
        [--allow-missing PATTERN ...] [--launcher none|pytorch|...]

Batch 1; for each image, ``model.test_step`` (data preprocessor, forward and
post-processing: NMS, masks, rescaling) is timed alone, the device
synchronised before and after on a GPU; loading the image is not timed, nor
are the first W images of each repeat. FPS of a repeat = timed images / their
total time; the closing line gives the mean over repeats and their spread.

Images come from the config's test set when it is there. With ``--shape``, or
when the data set is missing, random images of that size (default: the
paper's 1280x800 for detection, 512x512 for segmentation) go through the
model's data preprocessor (normalisation, padding) as an image that the test
pipeline has resized to that size would. Without a checkpoint the weights are
random (then the detectors' post-processing sees other boxes than a trained
model would). A checkpoint is loaded strictly (a missing, unexpected or
differently shaped key stops the tool; ``--allow-missing`` lets keys out).

With ``--launcher pytorch`` (``torchrun``), every process measures its own
share (images of the test set dealt out between them) and rank 0's
closing line is the sum of their FPS.

``--amp bf16`` runs under ``torch.autocast`` with bfloat16, on a GPU or on a
CPU with bf16 arithmetic (AVX512-BF16, AMX; refused on others, where it would
be emulated); ``--amp fp16`` (``--fp16``) on a GPU only, CPUs having no fp16
arithmetic to speak of. DTM's sampling positions stay in fp32 under both
(README, mixed precision).

``--compile [MODE]`` runs the backbone and the neck through
``torch.compile`` (``reduce-overhead``: with CUDA graphs), for the
launch-bound batch 1 of a fast GPU; the first images compile.
"""
import argparse
import itertools
import json
import logging
import os
import os.path as osp
import platform
import resource
import statistics
import sys
import time
from contextlib import nullcontext

import torch
from mmengine.config import DictAction
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.utils import ProgressBar

from litv2_openmmlab.apis import (
    PAPER_SHAPES,
    build_inference_model,
    load_config,
    synthetic_batch,
)
from litv2_openmmlab.checkpoint import CheckpointError, allowed_missing_keys
from litv2_openmmlab.engine.optim import amp_option_error, autocast_model
from litv2_openmmlab.engine.runner import init_distributed_without_gpu
from litv2_openmmlab.model_config_check import ModelConfigError

AMP_DTYPES = dict(bf16=torch.bfloat16, fp16=torch.float16)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Inference FPS of a LITv2 detector / segmentor '
        '(batch 1, as mmdet\'s benchmark)')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', nargs='?',
                        help='checkpoint file (random weights without)')
    parser.add_argument('--num-images', type=int, default=2000,
                        help='timed images per repeat (default 2000)')
    parser.add_argument('--warmup', type=int, default=5,
                        help='untimed images at the start of each repeat '
                        '(default 5)')
    parser.add_argument('--repeat', type=int, default=1,
                        help='repeats of the measurement (default 1)')
    parser.add_argument(
        '--shape', type=int, nargs='+', metavar='SIZE',
        help='random images of H W (one value: square) instead of the test '
        'set; default when there is no test set: 800 1280 (detection), '
        '512 512 (segmentation)')
    parser.add_argument('--device', choices=['cpu', 'cuda'],
                        default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--amp', choices=['bf16', 'fp16'],
                        help='run under torch.autocast with this dtype '
                        '(bf16: GPU, or a CPU with bf16 arithmetic; fp16: '
                        'GPU only)')
    parser.add_argument('--fp16', action='store_const', dest='amp',
                        const='fp16', help='the same as --amp fp16')
    parser.add_argument(
        '--compile', nargs='?', const='default', metavar='MODE',
        choices=['default', 'reduce-overhead', 'max-autotune'],
        help='torch.compile the backbone and the neck (MODE: default, '
        'reduce-overhead = CUDA graphs, max-autotune); the warm-up images '
        'then include the compilation: give enough of them')
    parser.add_argument('--json', help='also write the figures to this file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, as key=value pairs')
    parser.add_argument(
        '--allow-missing', nargs='+', metavar='PATTERN',
        help='checkpoint keys (fnmatch patterns) that may be missing, of '
        'another shape, or absent from the model (default: none)')
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    for name in ('num_images', 'repeat'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got '
                         f'{getattr(args, name)}')
    if args.warmup < 0:
        parser.error(f'--warmup must be >= 0, got {args.warmup}')
    if args.shape is not None and (len(args.shape) not in (1, 2)
                                   or min(args.shape) < 1):
        parser.error(f'--shape takes H W or one size (positive), got '
                     f'{args.shape}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: torch sees no CUDA device')
    amp_error = amp_option_error(args.amp, args.device)
    if amp_error:
        parser.error(amp_error)
    if (args.checkpoint is not None and '://' not in args.checkpoint
            and not osp.isfile(args.checkpoint)):
        parser.error(f'checkpoint {args.checkpoint!r} not found')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def test_set_batches(cfg, task):
    """Batches of one image from the config's test set, or None (logged)
    when the config has none or its files are missing."""
    loader_cfg = cfg.get('test_dataloader')
    if loader_cfg is None:
        print_log('the config has no test_dataloader: random images',
                  logger='current', level=logging.WARNING)
        return None
    loader_cfg = loader_cfg.copy()
    loader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False)
    try:
        with DefaultScope.overwrite_default_scope(task):
            loader = Runner.build_dataloader(loader_cfg)
    except (FileNotFoundError, NotADirectoryError) as err:
        print_log(f'test set not found ({err}): random images',
                  logger='current', level=logging.WARNING)
        return None
    if len(loader) == 0:
        raise ValueError(f'the test set of {cfg.filename} is empty')
    return itertools.chain.from_iterable(itertools.repeat(loader))


def random_batches(task, height, width):
    return (synthetic_batch(task, height, width, index=i)
            for i in itertools.count())


def compile_backbone_and_neck(model, mode):
    """``torch.compile`` the network's backbone and neck in place (after
    the checkpoint is loaded: compiled modules prefix their keys). At
    batch 1 on a fast GPU the time goes to launching kernels one by one,
    which compiling (fused kernels) and CUDA graphs (``reduce-overhead``)
    cut; heads and post-processing stay eager (data-dependent shapes)."""
    for name in ('backbone', 'neck'):
        module = getattr(model, name, None)
        if module is not None:
            setattr(model, name, torch.compile(module, mode=mode))


def synchronize(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def measure(model, batches, args, progress):
    """FPS of one repeat: ``args.warmup`` untimed images, then
    ``args.num_images`` timed ``test_step`` calls."""
    # the network under autocast, post-processing (NMS, ...) in fp32
    def autocast():
        return (autocast_model(model, args.device, AMP_DTYPES[args.amp])
                if args.amp else nullcontext())
    elapsed = 0.0
    for i in range(args.warmup + args.num_images):
        batch = next(batches)  # loading is not timed
        synchronize(args.device)
        start = time.perf_counter()
        with torch.no_grad(), autocast():
            model.test_step(batch)
        synchronize(args.device)
        if i >= args.warmup:
            elapsed += time.perf_counter() - start
        progress.update()
    return args.num_images / elapsed


def peak_memory(device):
    """``(MiB, what was measured)``."""
    if device == 'cuda':
        return (torch.cuda.max_memory_allocated() / 2**20,
                'torch.cuda.max_memory_allocated')
    # ru_maxrss is in KiB on Linux, in bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 2**20 if platform.system() == 'Darwin' else 2**10
    return rss / scale, 'peak resident set size of the process'


def device_name(device):
    if device == 'cuda':
        return torch.cuda.get_device_name()
    return f'{platform.processor() or platform.machine()} CPU'


def init_launcher(cfg, launcher):
    if launcher == 'none':
        return 0, 1
    if torch.cuda.is_available():
        from mmengine.dist import init_dist
        init_dist(launcher)
    else:
        init_distributed_without_gpu(cfg, launcher)
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def main(argv=None):
    args = parse_args(argv)
    cfg, task = load_config(args.config, args.cfg_options)
    # cuDNN's autotuning as the config's runner would set it (mmdet's and
    # mmseg's configs: off), whatever the process did before; on, its
    # trial workspaces would count in the peak memory.
    torch.backends.cudnn.benchmark = bool(
        (cfg.get('env_cfg') or {}).get('cudnn_benchmark', False))
    rank, world_size = init_launcher(cfg, args.launcher)
    device = args.device
    if device == 'cuda' and world_size > 1:
        torch.cuda.set_device(int(os.environ['LOCAL_RANK']))
    model = build_inference_model(
        cfg, task, args.checkpoint, device,
        allowed_missing_keys(cfg, args.allow_missing))
    if args.compile:
        compile_backbone_and_neck(model, args.compile)

    batches = None if args.shape else test_set_batches(cfg, task)
    if batches is None:
        height, width = ((args.shape[0], args.shape[-1])
                         if args.shape else PAPER_SHAPES[task])
        batches = random_batches(task, height, width)
        source = f'random images of {height}x{width}'
    else:
        source = 'test set'
        if world_size > 1:  # every process its own images
            batches = itertools.islice(batches, rank, None, world_size)
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()

    progress = ProgressBar(args.repeat * (args.warmup + args.num_images))
    fps = [measure(model, batches, args, progress)
           for _ in range(args.repeat)]
    sys.stdout.write('\n')
    mean = statistics.mean(fps)
    spread = statistics.stdev(fps) if len(fps) > 1 else 0.0
    memory, memory_kind = peak_memory(device)
    result = dict(
        config=args.config, checkpoint=args.checkpoint, task=task,
        source=source, num_images=args.num_images, warmup=args.warmup,
        repeat=args.repeat, fps=mean, fps_std=spread, fps_per_repeat=fps,
        ms_per_image=1000 / mean, peak_memory_mib=memory,
        peak_memory_kind=memory_kind, device=device,
        device_name=device_name(device), threads=torch.get_num_threads(),
        amp=args.amp, compile=args.compile, world_size=world_size)
    if world_size > 1:
        per_rank = [None] * world_size
        torch.distributed.all_gather_object(per_rank, mean)
        result.update(fps_per_rank=per_rank, fps_total=sum(per_rank))
    if rank != 0:
        return result

    print(f'{args.config}: {source}, batch 1, {args.num_images} images '
          f'x {args.repeat} repeat(s) after {args.warmup} warm-up image(s)')
    print(f'device: {device} ({result["device_name"]}), '
          f'{result["threads"]} threads, '
          + (f'{args.amp} autocast' if args.amp else 'fp32')
          + (f', backbone and neck compiled ({args.compile})'
             if args.compile else ''))
    print(f'time per image: {1000 / mean:.1f} ms')
    print(f'peak memory: {memory:.0f} MiB ({memory_kind})')
    if world_size > 1:
        print(f'rank 0: {mean:.2f} +- {spread:.2f} images/s (repeats: '
              f'{[round(f, 2) for f in fps]})')
        print(f'FPS: {result["fps_total"]:.2f} (sum over {world_size} '
              f'processes: {[round(f, 2) for f in per_rank]})')
    else:
        print(f'FPS: {mean:.2f} +- {spread:.2f} (repeats: '
              f'{[round(f, 2) for f in fps]})')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    try:
        main()
    except (CheckpointError, ModelConfigError) as err:
        sys.exit(f'{type(err).__name__}: {err}')  # one line, no traceback
