#!/usr/bin/env python
"""The GPU check: LITv2 on a CUDA GPU in one run, written as markdown + JSON.

    python tools/gpu_check.py --out DIR [--parts tests cls detector
        attention profile compile backbone] [--deadline SECONDS] [--smoke]

On a GPU machine without network it runs through ``tools/gpu_kit/run.sh``,
which installs the wheels that ``make gpu-kit`` prepared (mmcv without its
compiled ops, mmengine, mmdet, mmseg, timm) and mmcv's nms / RoIAlign /
sigmoid focal loss on torchvision's kernels (``tools/gpu_kit/mmcv_ext.py``).
Parts, in this order (each written to ``DIR/gpu_check.md`` and
``DIR/gpu_check.json`` as soon as it is done; a part that fails is reported
and the next one runs; parts that would pass ``--deadline`` are left out
and named):

* ``tests``: ``pytest tests/gpu/test_cuda.py`` (fp32 parity with the reference
  algorithm, autocast errors, AMP training step, checkpointing, SDPA batch
  limit, deterministic mode, DDP) and the tool tests that must not assume
  a CPU, with the errors each test measured;
* ``cls``: the paper's classification table: batch 64, 50 warm-up and 30
  timed forwards (eval, no grad, synchronised), fp32 and fp16 / bf16
  autocast, test and train memory (``torch.cuda.max_memory_allocated``),
  LITv2-S/M/B/B-384 beside timm's builds of the paper's peers;
* ``detector``: ``tools/fps.py`` for RetinaNet and Mask R-CNN LITv2-S (w2,
  w4) at 800x1280 and Semantic FPN LITv2-S at 512x512, beside mmdet's
  RetinaNet R-50 and Swin-T, fp32 and fp16;
* ``attention``: the paper's single-attention-layer benchmark
  (``benchmarks/bench_peers.py``), fp32 and fp16;
* ``profile``: the precision of each stage under CUDA autocast, the kernels
  of LITv2-S at batch 64 (fp16 inference and training step), and an A/B
  of Hi-Fi's window attention;
* ``compile``: ``tools/fps.py --compile reduce-overhead`` for RetinaNet
  LITv2-S and R-50, then ``torch.compile``-d classifiers under fp16
  autocast, LITv2-S first, then the peers, for at most
  ``COMPILE_BUDGET_S``;
* ``backbone``: backbones on one 800x1280 image (``bench_peers.py``).

``--smoke`` runs every part on the CPU with tiny sizes (``make test`` does,
so the check cannot rot); its figures mean nothing.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from types import SimpleNamespace

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tools import classification_benchmark as cls_bench  # noqa: E402

LITV2_MODELS = ['litv2_s', 'litv2_m', 'litv2_b', 'litv2_b_384']
# The paper's GPU speed table, timm's builds.
PAPER_PEERS = ['resnet50', 'swin_tiny_patch4_window7_224', 'convnext_tiny',
               'pvt_v2_b2', 'xcit_small_12_p16_224', 'twins_pcpvt_small']
# Peers compiled beside LITv2-S, in this order while the budget allows.
COMPILE_PEERS = ['resnet50', 'convnext_tiny', 'swin_tiny_patch4_window7_224',
                 'xcit_small_12_p16_224', 'pvt_v2_b2', 'twins_pcpvt_small']
# Detectors (DETECTORS' names) also measured with backbone and neck compiled.
COMPILED_DETECTORS = ('RetinaNet LITv2-S w2', 'RetinaNet R-50 (mmdet)')
# The paper's throughput (RTX 3090, batch 64, img/s).
PAPER_THROUGHPUT = {'litv2_s': 1471, 'litv2_m': 812, 'litv2_b': 602,
                    'litv2_b_384': 198, 'resnet50': 1279,
                    'swin_tiny_patch4_window7_224': 961,
                    'convnext_tiny': 1079, 'pvt_v2_b2': 854,
                    'xcit_small_12_p16_224': 1068, 'twins_pcpvt_small': 998}
# (name, config, input H W); 'mmdet::' = a config that ships with mmdet.
DETECTORS = [
    ('RetinaNet LITv2-S w2', 'configs/retinanet_litv2_s_w2.py', (800, 1280)),
    ('RetinaNet LITv2-S w4', 'configs/retinanet_litv2_s_w4.py', (800, 1280)),
    ('RetinaNet R-50 (mmdet)', 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
     (800, 1280)),
    ('RetinaNet Swin-T (mmdet)',
     'mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py', (800, 1280)),
    ('Mask R-CNN LITv2-S w2', 'configs/mask_rcnn_litv2_s_w2.py', (800, 1280)),
    ('Mask R-CNN LITv2-S w4', 'configs/mask_rcnn_litv2_s_w4.py', (800, 1280)),
    ('Semantic FPN LITv2-S', 'configs/semantic_fpn_litv2_s_ade20k.py',
     (512, 512)),
]
SMOKE_DETECTORS = [
    ('RetinaNet LITv2 toy', 'configs/quickstart/retinanet_litv2_toy.py',
     (64, 64)),
    ('Semantic FPN LITv2 toy', 'configs/quickstart/semantic_fpn_litv2_toy.py',
     (64, 64)),
]
PARTS = ('tests', 'cls', 'detector', 'attention', 'profile', 'compile',
         'backbone')
# seconds after which the compile part begins no further model
COMPILE_BUDGET_S = 240
# Test files whose tests must hold on a GPU machine too (they ask for the
# CPU explicitly where they measure it).
GPU_SAFE_TESTS = ['tests/tools/test_fps.py', 'tests/tools/test_gpu_kit.py',
                  'tests/timm/test_classification_benchmark.py']


class Report:
    """Sections of markdown and their data, rewritten after each part."""

    def __init__(self, out: Path, header: dict):
        self.out, self.header = out, header
        self.sections = []

    def add(self, title, text, rows=None, chart=None):  # bench_peers' API
        self.sections.append(dict(title=title, text=text, data=rows))
        print(f'\n## {title}\n\n{text}\n', flush=True)
        self.write()

    def write(self):
        lines = ['# LITv2 GPU check', '']
        lines += [f'- {k}: {v}' for k, v in self.header.items()]
        for s in self.sections:
            lines += ['', f'## {s["title"]}', '', s['text']]
        (self.out / 'gpu_check.md').write_text('\n'.join(lines) + '\n')
        (self.out / 'gpu_check.json').write_text(json.dumps(
            dict(header=self.header, sections=self.sections), indent=1,
            default=str))


def md_table(header, rows):
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def fmt(value, spec='.0f'):
    return '—' if value is None else format(value, spec)


# -- tests -------------------------------------------------------------------

def part_tests(ctx, report):
    xml = ctx.out / 'cuda_tests.xml'
    cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
           '-o', 'addopts=', '--timeout=150', 'tests/gpu/test_cuda.py',
           *([] if ctx.smoke else GPU_SAFE_TESTS), f'--junitxml={xml}']
    start = time.time()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          timeout=max(60, ctx.remaining() - 60))
    (ctx.out / 'tests.log').write_text(proc.stdout + proc.stderr)
    rows, data = [], []
    for case in ElementTree.parse(xml).getroot().iter('testcase'):
        outcome = 'passed'
        message = ''
        for kind in ('failure', 'error', 'skipped'):
            node = case.find(kind)
            if node is not None:
                outcome = {'failure': 'FAILED', 'error': 'ERROR'}.get(
                    kind, 'skipped')
                message = (node.get('message') or '').splitlines()
                message = message[0][:160] if message else ''
        props = {p.get('name'): p.get('value')
                 for p in case.iter('property')}
        name = f'{Path(case.get("classname").replace(".", "/")).name}::' \
               f'{case.get("name")}'
        data.append(dict(test=name, outcome=outcome, message=message,
                         measured=props, seconds=float(case.get('time', 0))))
        shown = '; '.join(f'{k}={v}' for k, v in props.items())
        rows.append([name, outcome, (shown or message).replace('|', '/')])
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout else ''
    text = md_table(['test', 'outcome', 'measured / message'], rows)
    text += (f'\n\n`{" ".join(cmd[2:-1])}`: {summary} '
             f'({time.time() - start:.0f} s)')
    report.add('CUDA tests', text, data)


# -- classifiers -------------------------------------------------------------

def precisions(ctx):
    return [None] if ctx.smoke else [None, 'fp16', 'bf16']


def part_cls(ctx, report):
    torch.backends.cudnn.benchmark = True
    names = (['litv2_s', 'resnet50'] if ctx.smoke
             else LITV2_MODELS + PAPER_PEERS)
    rows, left_out = [], []
    for name in names:
        if ctx.remaining() < 45:
            left_out.append(name)
            continue
        model, size = cls_bench.build(name, ctx.device)
        x = torch.randn(ctx.batch, *size, device=ctx.device)
        row = dict(model=name, input=size[1],
                   params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                   paper=PAPER_THROUGHPUT.get(name))
        for amp in precisions(ctx):
            tag = amp or 'fp32'
            row[f'{tag}_img_s'] = cls_bench.timed_forwards(
                model, x, ctx.runs, ctx.warmup, amp)
            # (bf16 takes the memory of fp16: both are 2-byte types)
            if ctx.device == 'cuda' and amp != 'bf16':
                for train in (False, True):
                    key = f'{tag}_{"train" if train else "test"}_gb'
                    row[key] = cls_bench.cuda_peak_memory(
                        model, x, train, amp) / 1e9
        rows.append(row)
        print(row, flush=True)
        del model, x
        free_device(ctx)
    tags = [amp or 'fp32' for amp in precisions(ctx)]
    header = ['model', 'input', 'params (M)'] + [f'{t} img/s' for t in tags]
    header += [f'{t} test / train GB' for t in tags if t != 'bf16']
    header += ['paper img/s (RTX 3090)']
    md_rows = []
    for r in rows:
        md = [f'**{r["model"]}**' if r['model'].startswith('litv2')
              else r['model'], r['input'], fmt(r['params_m'], '.1f')]
        md += [fmt(r.get(f'{t}_img_s')) for t in tags]
        md += [f'{fmt(r.get(f"{t}_test_gb"), ".2f")} / '
               f'{fmt(r.get(f"{t}_train_gb"), ".2f")}' for t in tags
               if t != 'bf16']
        md.append(fmt(r['paper'], 'd'))
        md_rows.append(md)
    text = md_table(header, md_rows)
    text += '\n\n' + lead_line(rows, tags)
    text += (f'\n\nBatch {ctx.batch}, {ctx.warmup} warm-up and {ctx.runs} '
             'timed forwards in eval mode without grad, synchronised; '
             'img/s = runs x batch / elapsed; fp16 / bf16 = '
             '`torch.autocast`; cuDNN benchmark on, TF32 as PyTorch sets it '
             '(matmul off, cuDNN convolutions on). Memory: '
             '`max_memory_allocated` of one test (forward) / train (forward '
             '+ backward of cross-entropy) step, weights and gradients '
             'included, cuDNN autotuning off for it.')
    if left_out:
        text += f'\n\nLeft out (deadline): {", ".join(left_out)}.'
    report.add(f'Classifiers, 224x224 (B-384: 384x384), batch {ctx.batch}',
               text, rows)


def lead_line(rows, tags):
    """LITv2-S against the fastest peer of the paper's table, per
    precision."""
    by_name = {r['model']: r for r in rows}
    if 'litv2_s' not in by_name:
        return 'LITv2-S not measured.'
    parts = []
    for t in tags:
        peers = [r for r in rows if not r['model'].startswith('litv2')
                 and r.get(f'{t}_img_s')]
        if not peers:
            continue
        best = max(peers, key=lambda r: r[f'{t}_img_s'])
        ratio = by_name['litv2_s'][f'{t}_img_s'] / best[f'{t}_img_s']
        parts.append(f'{t} {ratio:.2f}x the fastest peer ({best["model"]})')
    return 'LITv2-S: ' + '; '.join(parts) + '.'


def part_compile(ctx, report):
    part_start = time.time()
    compile_detectors(ctx, report, part_start)
    compile_classifiers(ctx, report, part_start)


def compile_budget_left(ctx, part_start):
    """A compile takes 20-90 s on 16 cores: one is begun while the part
    has used under COMPILE_BUDGET_S and a minute is left."""
    return (ctx.remaining() >= (10 if ctx.smoke else 60)
            and time.time() - part_start <= COMPILE_BUDGET_S)


def compile_detectors(ctx, report, part_start):
    """``tools/fps.py --compile reduce-overhead`` (backbone and neck
    compiled, CUDA graphs) for RetinaNet LITv2-S and R-50, fp32."""
    import torch._dynamo

    from tools import fps as fps_tool
    if ctx.smoke:
        report.add('Compiled detectors (tools/fps.py --compile)',
                   'Not run in smoke mode (inductor\'s build takes minutes '
                   'on a CPU; tests/tools/test_fps.py covers the option).')
        return
    rows, left_out = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec, shape in [d for d in DETECTORS
                                  if d[0] in COMPILED_DETECTORS]:
            if not compile_budget_left(ctx, part_start):
                left_out.append(name)
                continue
            torch._dynamo.reset()
            config = config_path(spec)
            ckpt = Path(tmp) / 'model.pth'
            initialised_checkpoint(config, ckpt)
            try:
                result = fps_tool.main([
                    config, str(ckpt), '--shape', *map(str, shape),
                    '--num-images', '100', '--warmup', '20', '--device',
                    ctx.device, '--compile', 'reduce-overhead'])
                rows.append(dict(model=name, fps=result['fps']))
            except Exception as err:  # report, go on
                rows.append(dict(model=name, error=repr(err)[:200]))
            free_device(ctx)
    text = md_table(['model', 'fp32 FPS, backbone + neck compiled '
                     '(reduce-overhead)'],
                    [[r['model'], fmt(r.get('fps'), '.1f') if 'fps' in r
                      else r['error']] for r in rows])
    text += ('\n\n`tools/fps.py --compile reduce-overhead`: batch 1, '
             '800x1280, 20 warm-up images (compiling, CUDA graph capture) '
             'and 100 timed; compare with the eager rows of the detector '
             'table.')
    if left_out:
        text += f'\n\nLeft out (deadline): {", ".join(left_out)}.'
    report.add('Compiled detectors (tools/fps.py --compile)', text, rows)


def compile_classifiers(ctx, report, part_start):
    import torch._dynamo
    torch.backends.cudnn.benchmark = True
    names = ['litv2_s'] if ctx.smoke else ['litv2_s'] + COMPILE_PEERS
    amp = None if ctx.smoke else 'fp16'
    rows, left_out = [], []
    for name in names:
        if not compile_budget_left(ctx, part_start):
            left_out.append(name)
            continue
        torch._dynamo.reset()
        model, size = cls_bench.build(name, ctx.device)
        x = torch.randn(ctx.batch, *size, device=ctx.device)
        eager = cls_bench.timed_forwards(model, x, ctx.runs, ctx.warmup, amp)
        # smoke mode: dynamo's tracing only (inductor's C++ build would take
        # minutes on a small CPU)
        compiled = torch.compile(model,
                                 backend='eager' if ctx.smoke else 'inductor')
        start = time.time()
        try:
            cls_bench.timed_forwards(compiled, x, 1, 0, amp)
        except Exception as err:  # report, go on with the next model
            rows.append(dict(model=name, eager=eager, error=repr(err)[:200]))
            continue
        compile_s = time.time() - start
        fast = cls_bench.timed_forwards(compiled, x, ctx.runs, ctx.warmup,
                                        amp)
        rows.append(dict(model=name, eager=eager, compiled=fast,
                         compile_s=compile_s))
        print(rows[-1], flush=True)
        del model, compiled, x
        free_device(ctx)
    text = md_table(
        ['model', 'eager img/s', 'compiled img/s', 'compile time (s)'],
        [[r['model'], fmt(r['eager']), fmt(r.get('compiled')),
          fmt(r.get('compile_s'))] + ([r['error']] if 'error' in r else [])
         for r in rows])
    lit = next((r for r in rows if r['model'] == 'litv2_s'), None)
    peers = [r for r in rows if r['model'] != 'litv2_s' and r.get('compiled')]
    if lit and lit.get('compiled') and peers:
        best = max(peers, key=lambda r: r['compiled'])
        ratio = lit['compiled'] / best['compiled']
        text += (f'\n\nCompiled LITv2-S: {ratio:.2f}x the fastest compiled '
                 f'peer ({best["model"]}).')
    text += (f'\n\n`torch.compile` (default options), '
             f'{amp or "fp32"} autocast, batch {ctx.batch}, the paper\'s '
             'timing after the first (compiling) call.')
    if left_out:
        text += f'\n\nLeft out (deadline): {", ".join(left_out)}.'
    report.add('Compiled classifiers', text, rows)


# -- detectors and segmentors -------------------------------------------------

def config_path(spec):
    if spec.startswith('mmdet::'):
        import mmdet
        return str(Path(mmdet.__file__).parent / '.mim' / 'configs'
                   / spec[len('mmdet::'):])
    return str(REPO / spec)


def initialised_checkpoint(config, path):
    """The config's own initialisation (``init_weights``; no pretrained
    file is read), saved: the heads' biases as training starts (RetinaNet's
    prior probability), so post-processing sees few boxes, as for every
    model here alike."""
    from litv2_openmmlab.apis import build_inference_model, load_config
    cfg, task = load_config(config)
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    model = build_inference_model(cfg, task)
    model.init_weights()
    torch.save({'state_dict': model.state_dict()}, path)


def part_detector(ctx, report):
    from tools import fps as fps_tool
    detectors = SMOKE_DETECTORS if ctx.smoke else DETECTORS
    amps = [None] if ctx.smoke else [None, 'fp16']
    images, warmup = (1, 0) if ctx.smoke else (100, 10)
    rows, left_out = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec, shape in detectors:
            if ctx.remaining() < 40:
                left_out.append(name)
                continue
            config = config_path(spec)
            ckpt = Path(tmp) / 'model.pth'
            initialised_checkpoint(config, ckpt)
            row = dict(model=name, config=spec, shape=shape)
            for amp in amps:
                argv = [config, str(ckpt), '--shape', *map(str, shape),
                        '--num-images', str(images), '--warmup', str(warmup),
                        '--device', ctx.device]
                if amp:
                    argv += ['--amp', amp]
                try:
                    result = fps_tool.main(argv)
                    row[amp or 'fp32'] = result['fps']
                    row[f'{amp or "fp32"}_mib'] = result['peak_memory_mib']
                except Exception as err:
                    row[f'{amp or "fp32"}_error'] = repr(err)[:200]
                free_device(ctx)
            rows.append(row)
    tags = [a or 'fp32' for a in amps]
    text = md_table(
        ['model', 'input'] + [f'{t} FPS' for t in tags]
        + [f'{t} peak MiB' for t in tags],
        [[r['model'], f'{r["shape"][0]}x{r["shape"][1]}']
         + [fmt(r.get(t), '.1f') if t in r else r.get(f'{t}_error', '—')
            for t in tags]
         + [fmt(r.get(f'{t}_mib')) for t in tags] for r in rows])
    text += (f'\n\n`tools/fps.py` in one process: batch 1, {warmup} warm-up '
             f'and {images} timed images of random pixels at the input '
             'size, weights of each config\'s own initialisation (few boxes '
             'reach post-processing, alike for every model); mmcv\'s nms / '
             'RoIAlign on torchvision\'s kernels (tools/gpu_kit/mmcv_ext.py).')
    if left_out:
        text += f'\n\nLeft out (deadline): {", ".join(left_out)}.'
    report.add('Detectors and segmentor (tools/fps.py)', text, rows)


# -- attention layer and backbones (benchmarks/bench_peers.py) ---------------

def bench_peers_args(ctx, **kw):
    args = SimpleNamespace(device=ctx.device, modes=['fp32'] if ctx.smoke
                           else ['fp32', 'fp16'], figures=None, peers=None)
    args.__dict__.update(kw)
    return args


def part_attention(ctx, report):
    from benchmarks import bench_peers
    args = bench_peers_args(ctx, attn_batch=2 if ctx.smoke else 64,
                            attn_rounds=1 if ctx.smoke else 50)
    bench_peers.bench_attention(args, report)


def part_backbone(ctx, report):
    from benchmarks import bench_peers
    args = bench_peers_args(
        ctx, backbone_tiers=['s'], rounds=1 if ctx.smoke else 20,
        backbone_shape=[64, 64] if ctx.smoke else [800, 1280],
        peers=['resnet50'] if ctx.smoke else None)
    bench_peers.bench_backbones(args, report)


# -- precision per stage and kernel profile -----------------------------------

def stage_precisions(model, x, dtype):
    """The dtype of each stage's residual stream and of its DTM output under
    autocast (forward hooks)."""
    seen = {}
    hooks = []
    for i, stage in enumerate(model.layers):
        hooks.append(stage.register_forward_hook(
            lambda m, a, out, i=i: seen.__setitem__(f'stage {i + 1} blocks',
                                                    out.dtype)))
        if stage.downsample is not None:
            hooks.append(stage.downsample.register_forward_hook(
                lambda m, a, out, i=i: seen.__setitem__(
                    f'stage {i + 1} DTM', out.dtype)))
    with torch.no_grad(), torch.autocast(x.device.type, dtype=dtype):
        model(x)
    for h in hooks:
        h.remove()
    return {k: str(v).replace('torch.', '') for k, v in seen.items()}


def kernel_table(prof, device):
    """The profiler's table, most device time first (the sort key was
    renamed in recent PyTorch)."""
    averages = prof.key_averages()
    keys = (['device_time_total', 'cuda_time_total'] if device == 'cuda'
            else ['cpu_time_total'])
    for key in keys:
        try:
            return averages.table(sort_by=key, row_limit=18)
        except (AttributeError, KeyError, ValueError):
            continue
    return averages.table(row_limit=18)


def part_profile(ctx, report):
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    model, size = cls_bench.build('litv2_s', ctx.device)
    batch = 2 if ctx.smoke else ctx.batch
    side = 64 if ctx.smoke else size[-1]
    x = torch.randn(batch, 3, side, side, device=ctx.device)
    dtypes = ([torch.bfloat16] if ctx.smoke
              else [torch.float16, torch.bfloat16])
    table = {str(d).replace('torch.', ''): stage_precisions(model, x, d)
             for d in dtypes}
    keys = list(next(iter(table.values())))
    text = md_table(['autocast'] + keys,
                    [[d] + [v[k] for k in keys] for d, v in table.items()])
    activities = [ProfilerActivity.CPU] + (
        [ProfilerActivity.CUDA] if ctx.device == 'cuda' else [])
    # smoke mode profiles fp32: on a CPU, autocast's bf16 convolutions run
    # as per-channel loops whose ~10^6 profiler events take minutes to parse
    amp = None if ctx.smoke else 'fp16'
    data = dict(precision=table, hifi_ab=hifi_attention_ab(ctx, model, x))
    for mode in ('inference', 'training step'):
        train = mode != 'inference'
        for _ in range(3):  # warm-up (cuDNN, allocator)
            cls_bench._step(model, x, ctx.device, train, amp)
        with profile(activities=activities) as prof:
            cls_bench._step(model, x, ctx.device, train, amp)
        kernels = sum(1 for e in prof.events()
                      if e.device_type == DeviceType.CUDA)
        summary = kernel_table(prof, ctx.device)
        data[mode] = dict(kernels=kernels, table=summary)
        text += (f'\n\nLITv2-S, batch {batch}, '
                 f'{f"{amp} autocast" if amp else "fp32"}, {mode}: '
                 f'{kernels} CUDA kernels\n\n```\n{summary}\n```')
    text += '\n\n' + md_table(
        ['precision', 'img/s as is', 'img/s, Hi-Fi always on SDPA'],
        [[t, fmt(v['as is']), fmt(v['sdpa'])]
         for t, v in data['hifi_ab'].items()])
    text += ('\n\nA/B of Hi-Fi\'s window attention (4 tokens a window): '
             'two batched matmuls (fp32, bf16) / SDPA (fp16), as the model '
             'does, against SDPA for every precision; LITv2-S, the paper\'s '
             'timing, median of 3 interleaved rounds (measured before the '
             'profiler runs).')
    report.add('Precision per stage under CUDA autocast; kernel profile',
               text, data)


def hifi_attention_ab(ctx, model, x):
    """Throughput with Hi-Fi's window attention as the model computes it
    and with ``F.scaled_dot_product_attention`` for every dtype."""
    from litv2 import hilo

    def sdpa(q, k, v, scale, dropout_p=0.0):
        return torch.nn.functional.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout_p, scale=scale)

    original = hilo.window_attention
    results = {}
    for amp in precisions(ctx):
        times = {'as is': [], 'sdpa': []}
        for round_ in range(1 if ctx.smoke else 3):  # interleaved rounds
            for variant, fn in (('as is', original), ('sdpa', sdpa)):
                hilo.window_attention = fn
                try:
                    times[variant].append(cls_bench.timed_forwards(
                        model, x, ctx.runs, ctx.warmup if round_ == 0
                        else 5, amp))
                finally:
                    hilo.window_attention = original
        results[amp or 'fp32'] = {k: statistics.median(v)
                                  for k, v in times.items()}
    return results


# -- driver -------------------------------------------------------------------

def free_device(ctx):
    import gc
    gc.collect()
    if ctx.device == 'cuda':
        torch.cuda.empty_cache()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='folder of the report')
    parser.add_argument('--parts', nargs='+', choices=PARTS,
                        default=list(PARTS))
    parser.add_argument('--deadline', type=float, default=480,
                        help='seconds from the start after which no part '
                        'or model is begun (default 480: with the wheels\' '
                        'install, a run of about 9 minutes)')
    parser.add_argument('--smoke', action='store_true',
                        help='every part on the CPU with tiny sizes')
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        parser.error('torch sees no CUDA device (--smoke runs on the CPU)')
    return args


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    ctx = SimpleNamespace(
        out=out, smoke=args.smoke,
        device='cpu' if args.smoke else 'cuda',
        batch=2 if args.smoke else 64, runs=1 if args.smoke else 30,
        warmup=0 if args.smoke else 50,
        remaining=lambda: args.deadline - (time.time() - start))
    import timm
    device = ('CPU (smoke mode)' if args.smoke else
              f'{torch.cuda.get_device_name()}, CUDA {torch.version.cuda}, '
              f'cuDNN {torch.backends.cudnn.version()}')
    report = Report(out, dict(
        device=device, torch=torch.__version__, timm=timm.__version__,
        python=sys.version.split()[0], cpus=os.cpu_count(),
        command='python tools/gpu_check.py ' + ' '.join(
            sys.argv[1:] if argv is None else argv)))
    runners = dict(tests=part_tests, cls=part_cls, detector=part_detector,
                   attention=part_attention, backbone=part_backbone,
                   profile=part_profile, compile=part_compile)
    for part in PARTS:
        if part not in args.parts:
            continue
        if ctx.remaining() < 20:
            report.add(f'Part {part}: left out', 'The deadline had passed.')
            continue
        print(f'== {part} ({time.time() - start:.0f} s)', flush=True)
        try:
            runners[part](ctx, report)
        except Exception:  # report it, go on with the next part
            err = traceback.format_exc()
            print(err, flush=True)
            report.add(f'Part {part}: failed', f'```\n{err[-2000:]}\n```')
        free_device(ctx)
    report.header['seconds'] = round(time.time() - start)
    report.write()
    print(f'wrote {out / "gpu_check.md"} ({time.time() - start:.0f} s)')
    return report


if __name__ == '__main__':
    main()
