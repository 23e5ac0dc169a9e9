"""LITv2 against the peers of the paper's speed tables, measured side by side.

    python benchmarks/bench_peers.py [--quick] [--parts cls backbone detector
        attention train] [--modes fp32 bf16 compile] [--tiers s m b]
        [--rounds N] [--threads N] [--markdown FILE] [--json FILE]
        [--figures DIR]

Parts (each a markdown table and, with matplotlib, a PNG bar chart):

* ``cls``: ImageNet classifiers at 224x224, batch 64 (the paper's) and a
  small batch (16): images/s, peak memory of one forward, params and
  FLOPs. LITv2-S/M/B (``timm.create_model('litv2_*')``) against timm's
  builds of the paper's peers at matching sizes (``PEERS``). By default
  the M and B tiers run at batch 16 only (``--mb-batches 64 16`` adds the
  paper's batch; about 12 more minutes on 2 cores).
* ``backbone``: backbones on one 1x3x800x1280 image: the project's LITv2 as
  mmdet builds it (``MODELS.build`` of the RetinaNet config's backbone dict)
  against timm's ``features_only`` peers (four feature maps each).
* ``detector``: the whole RetinaNet through ``tools/fps.py`` (batch 1,
  800x1280 random images, random weights from each config's own
  initialisation): LITv2-S against mmdet's own RetinaNet R-50 and Swin-T
  configs.
* ``attention``: the paper's single-attention-layer benchmark (dim 768,
  12 heads, 14x14 tokens, batch 64): the project's HiLo against timm's MSA,
  SRA (PVTv2, sr 2), Swin window attention (local, shifted), XCA (XCiT) and
  Twins' locally-grouped / global sub-sampled attention; params and FLOPs
  per layer.
* ``train``: one training step (forward + backward) of the LITv2-S/M/B
  backbones, the project's against the straightforward reference algorithm
  (``litv2/testing/reference.py``, as in ``bench_hilo.py``), eager and
  (with ``--modes compile``) ``torch.compile``-d.

Method: all models of one comparison are built in one process and run in
interleaved rounds (the order rotates every round), so load drift hits them
all; the median of the rounds is reported, after one untimed warm-up call
per model and batch size. Modes: ``fp32`` (eager), ``bf16``
(``torch.autocast`` bfloat16, eager), ``compile`` (``torch.compile``,
default options, fp32); peers always run in the same mode as LITv2.
Params and FLOPs are counted the same way for every model:
``torch.utils.flop_counter.FlopCounterMode`` on one image, multiply-adds
(matmul, conv, attention, PyTorch's fused CPU attention included:
``benchmarks/flop_count.py``; not norms, activations, sampling). Peak memory:
the resident memory one forward adds (Linux ``VmHWM`` reset before it,
``malloc_trim`` first) on CPU, ``torch.cuda.max_memory_allocated`` on CUDA.
The load average and the CPU time stolen by the hypervisor during the run
are printed with the results; on a shared machine compare ratios, not
absolute figures.

Defaults are sized for ``make bench-peers`` to take about 15 minutes on 2
idle CPU cores; ``--quick`` (a few minutes) runs LITv2-S's tier only, batch
16, one round, no detector. bf16 / compile, e.g.:
``--parts cls backbone attention --modes bf16 compile --tiers s
--batches 16 --peers resnet50 convnext_tiny xcit_small_12_p16_224``.
"""
import argparse
import contextlib
import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks.flop_count import count_macs  # noqa: E402
from benchmarks.machine import (  # noqa: E402
    cpu_description,
    cpu_ticks,
    native_bf16,
)

# tier -> (LITv2 model, timm peers at matching size). S: the paper's speed
# table; M and B: the small / base versions timm has.
PEERS = {
    's': ('litv2_s', ['resnet50', 'swin_tiny_patch4_window7_224',
                      'convnext_tiny', 'pvt_v2_b2', 'twins_pcpvt_small',
                      'xcit_small_12_p16_224', 'coatnet_0_224',
                      'cait_xs24_384', 'tnt_s_patch16_224']),
    'm': ('litv2_m', ['resnet101', 'swin_small_patch4_window7_224',
                      'convnext_small', 'pvt_v2_b3', 'twins_pcpvt_base',
                      'xcit_small_24_p16_224', 'coatnet_1_224',
                      'cait_s24_224']),
    'b': ('litv2_b', ['resnet152', 'swin_base_patch4_window7_224',
                      'convnext_base', 'pvt_v2_b4', 'twins_pcpvt_large',
                      'xcit_medium_24_p16_224', 'coatnet_2_224',
                      'tnt_b_patch16_224']),
}
# The paper's throughput table (RTX 3090, batch 64, img/s).
PAPER_GPU = {'litv2_s': 1471, 'resnet50': 1279,
             'swin_tiny_patch4_window7_224': 961, 'convnext_tiny': 1079,
             'pvt_v2_b2': 854, 'xcit_small_12_p16_224': 1068,
             'twins_pcpvt_small': 998, 'coatnet_0_224': 1151}
# Peers whose default input is not 224: built at 224 here.
IMG_SIZE_224 = {'cait_xs24_384'}

# Backbones at 800x1280: timm features_only peers and the arguments they need
# for that input (their window / position embedding sizes).
BACKBONE_PEERS = {
    's': ['resnet50', 'convnext_tiny', 'swin_tiny_patch4_window7_224',
          'pvt_v2_b2', 'twins_pcpvt_small', 'xcit_small_12_p16_224'],
    'm': ['resnet101', 'convnext_small', 'swin_small_patch4_window7_224',
          'pvt_v2_b3', 'twins_pcpvt_base', 'xcit_small_24_p16_224'],
    'b': ['resnet152', 'convnext_base', 'swin_base_patch4_window7_224',
          'pvt_v2_b4', 'twins_pcpvt_large', 'xcit_medium_24_p16_224'],
}
BACKBONE_CONFIGS = {'s': 'configs/retinanet_litv2_s_w2.py',
                    'm': 'configs/retinanet_litv2_m_w2.py',
                    'b': 'configs/retinanet_litv2_b_w2.py'}

# The paper's single-layer benchmark, CPU column (img/s).
PAPER_ATTN_CPU = {'HiLo': 1029, 'SRA (PVTv2, sr 2)': 710,
                  'local window (Swin, 7x7)': 631, 'XCA (XCiT)': 583,
                  'MSA (ViT)': 505, 'shifted window (Swin, 7x7)': 374}


# -- measurement helpers ---------------------------------------------------



def loadavg():
    try:
        return float(Path('/proc/loadavg').read_text().split()[0])
    except OSError:
        return float('nan')




class Machine:
    """Load, steal and device of the run, for the report."""

    def __init__(self, device):
        self.device = device
        self.load_start = loadavg()
        self.ticks_start = cpu_ticks()
        self.start = time.time()

    def summary(self):
        end = cpu_ticks()
        if self.ticks_start and end and end[0] > self.ticks_start[0]:
            steal = 100 * (end[1] - self.ticks_start[1]) / (
                end[0] - self.ticks_start[0])
        else:
            steal = float('nan')
        dev = (torch.cuda.get_device_name() if self.device == 'cuda'
               else f'{cpu_description()}, {os.cpu_count()} cores')
        return (f'{dev}, torch {torch.__version__}, '
                f'{torch.get_num_threads()} threads; load average '
                f'{self.load_start:.1f} at the start, {loadavg():.1f} at the '
                f'end; CPU time stolen by the hypervisor {steal:.1f}%; '
                f'{(time.time() - self.start) / 60:.1f} min')


def synchronize(device):
    if device == 'cuda':
        torch.cuda.synchronize()


_LIBC = None


def _trim():
    global _LIBC
    gc.collect()
    try:
        _LIBC = _LIBC or ctypes.CDLL('libc.so.6')
        _LIBC.malloc_trim(0)
    except OSError:
        pass


def _vm_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0


@contextlib.contextmanager
def peak_memory(device, out: dict):
    """``out['mib']``: memory the block adds at its peak."""
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        yield
        torch.cuda.synchronize()
        out['mib'] = (torch.cuda.max_memory_allocated() - before) / 2**20
        return
    _trim()
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # VmHWM := VmRSS
        before = _vm_kib('VmRSS')
    except OSError:
        before = None
    yield
    out['mib'] = ((_vm_kib('VmHWM') - before) / 1024
                  if before is not None else None)


def mode_context(mode, device):
    if mode == 'bf16':
        return torch.autocast(device, dtype=torch.bfloat16)
    if mode == 'fp16':  # GPUs (CPUs have no fast fp16 arithmetic)
        return torch.autocast(device, dtype=torch.float16)
    return contextlib.nullcontext()


def prepare(model, mode):
    if mode == 'compile':
        return torch.compile(model)
    if mode == 'compile-nolayout':
        # Inductor's CPU layout optimisation (channels-last for every conv)
        # gives LITv2's (B, H, W, C) residual stream transposed strides
        # where a conv reads a permuted view of it (DTM); this mode shows
        # every model without it (see docs/measuring.md).
        return torch.compile(
            model, options=dict(layout_optimization=False))
    return model


def count(model, inputs):
    """(params M, GMACs of one call) counted the same way for every model
    (``benchmarks/flop_count.py``: fused attention included)."""
    params = sum(p.numel() for p in model.parameters()) / 1e6
    # LITv2's ConvFFN computes the whole map with autograd on (in CPU
    # inference it goes in pieces whose halo rows would be counted twice).
    macs = count_macs(lambda: model(*inputs) if isinstance(inputs, tuple)
                      else model(inputs))
    return params, macs / 1e9


def interleaved(fns: dict, rounds: int, device, memory=False):
    """Median seconds per call of each fn, rounds interleaved (the order
    rotates each round), after one untimed warm-up call each (with
    ``memory``, the warm-up's peak memory is returned too)."""
    names = list(fns)
    mem = {}
    for name in names:
        box = {}
        ctx = peak_memory(device, box) if memory else contextlib.nullcontext()
        with ctx:
            fns[name]()
            synchronize(device)
        mem[name] = box.get('mib')
    times = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            synchronize(device)
            start = time.perf_counter()
            fns[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {n: statistics.median(t) for n, t in times.items()}, mem


def fmt(v, spec='.2f'):
    return '—' if v is None else format(v, spec)


def md_table(header, rows):
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


# -- part 1: classifiers ---------------------------------------------------

def build_classifier(name, device):
    import timm
    if name.startswith('litv2'):
        import litv2
        litv2.register_timm_models()
    kwargs = dict(img_size=224) if name in IMG_SIZE_224 else {}
    return timm.create_model(name, pretrained=False, **kwargs).to(
        device).eval()


def bench_classifiers(args, report):
    for tier in args.tiers:
        litv2_name, peers = PEERS[tier]
        if args.peers:
            peers = [n for n in peers if n in args.peers]
        names = [litv2_name] + peers
        # The paper's comparison (S) at every batch size; M and B, whose
        # batch-64 rounds would take most of the run on a small CPU, at the
        # --mb-batches.
        batches = args.batches if tier == 's' else args.mb_batches
        rounds = args.rounds if tier == 's' else args.mb_rounds
        models, skipped = {}, []
        for name in names:
            try:
                models[name] = build_classifier(name, args.device)
            except Exception as e:  # a name this timm does not have
                skipped.append(f'{name} ({type(e).__name__}: {e})')
        if litv2_name not in models or len(models) < 2:
            report.add(f'Classifiers, tier {tier.upper()}',
                       'Not measured: ' + '; '.join(skipped), [])
            continue
        one = torch.randn(1, 3, 224, 224, device=args.device)
        counts = {n: count(m, one) for n, m in models.items()}
        for mode in args.modes:
            for batch in batches:
                x = torch.randn(batch, 3, 224, 224, device=args.device)
                run = {n: prepare(m, mode) for n, m in models.items()}
                fns = {n: (lambda m=m: m(x)) for n, m in run.items()}
                with torch.no_grad(), mode_context(mode, args.device):
                    t, mem = interleaved(fns, rounds, args.device,
                                         memory=(mode == 'fp32'))
                ips = {n: batch / s for n, s in t.items()}
                best_peer = max((n for n in ips if n != litv2_name),
                                key=ips.get)
                rows = []
                for n in sorted(ips, key=ips.get, reverse=True):
                    rows.append(dict(
                        model=n, params_m=counts[n][0],
                        gmacs=counts[n][1], img_s=ips[n],
                        ratio=ips[n] / ips[best_peer], mem_mib=mem.get(n),
                        paper_gpu=PAPER_GPU.get(n) if tier == 's' else None))
                cuda = args.device == 'cuda'
                md_rows = [[f'**{r["model"]}**' if r['model'] == litv2_name
                            else r['model'], fmt(r['params_m'], '.1f'),
                            fmt(r['gmacs'], '.2f'), fmt(r['img_s'], '.1f'),
                            f'{r["ratio"]:.2f}x', fmt(r['mem_mib'], '.0f'),
                            fmt(r['img_s'], '.0f') if cuda
                            else 'not measured',
                            fmt(r['paper_gpu'], 'd')] for r in rows]
                title = (f'Classifiers, tier {tier.upper()}, 224x224, batch '
                         f'{batch}, {mode}')
                text = md_table(
                    ['model', 'params (M)', 'GMACs', f'{args.device} img/s',
                     f'vs fastest peer ({best_peer})',
                     'peak mem (MiB)', 'GPU img/s', 'paper GPU img/s'],
                    md_rows)
                if skipped:
                    text += '\n\nNot built: ' + '; '.join(skipped)
                report.add(title, text, rows, chart=dict(
                    label='model', value='img_s',
                    unit=f'images / s ({args.device}, {mode})',
                    title=title,
                    file=f'cls_{tier}_b{batch}_{mode}.png'))
                del run, fns
        del models
        _trim()


# -- part 2: backbones and detectors ----------------------------------------

def build_litv2_backbone(tier, device):
    """The project's LITv2 as mmdet builds it from the RetinaNet config."""
    from mmdet.registry import MODELS
    from mmengine.config import Config

    import mmdet_litv2  # noqa: F401
    cfg = Config.fromfile(str(REPO / BACKBONE_CONFIGS[tier]))
    backbone = cfg.model.backbone
    backbone.init_cfg = None
    return MODELS.build(backbone).to(device).eval()


def build_timm_backbone(name, shape, device):
    import timm
    kwargs = dict(features_only=True, pretrained=False)
    if name.startswith('swin'):
        kwargs.update(img_size=tuple(shape), strict_img_size=False)
    if name.startswith('resnet'):
        kwargs.update(out_indices=(1, 2, 3, 4))  # strides 4-32, as mmdet's
    return timm.create_model(name, **kwargs).to(device).eval()


def bench_backbones(args, report):
    shape = args.backbone_shape
    for tier in args.backbone_tiers:
        litv2_name = f'LITv2-{tier.upper()} (mmdet)'
        models, skipped = {}, []
        try:
            models[litv2_name] = build_litv2_backbone(tier, args.device)
        except Exception as e:
            skipped.append(f'{litv2_name} ({type(e).__name__}: {e})')
        for name in BACKBONE_PEERS[tier]:
            if args.peers and name not in args.peers:
                continue
            try:
                m = build_timm_backbone(name, shape, args.device)
                with torch.no_grad():
                    m(torch.randn(1, 3, *shape, device=args.device))
                models[name] = m
            except Exception as e:
                skipped.append(f'{name} ({type(e).__name__}: '
                               f'{str(e)[:120]})')
        x = torch.randn(1, 3, *shape, device=args.device)
        counts = {n: count(m, x) for n, m in models.items()}
        for mode in args.modes:
            run = {n: prepare(m, mode) for n, m in models.items()}
            fns = {n: (lambda m=m: m(x)) for n, m in run.items()}
            with torch.no_grad(), mode_context(mode, args.device):
                t, mem = interleaved(fns, args.rounds, args.device,
                                     memory=(mode == 'fp32'))
            best_peer = min((n for n in t if n != litv2_name), key=t.get)
            rows = [dict(model=n, params_m=counts[n][0], gmacs=counts[n][1],
                         s=t[n], fps=1 / t[n], ratio=t[best_peer] / t[n],
                         mem_mib=mem.get(n))
                    for n in sorted(t, key=t.get)]
            title = (f'Backbones, 1x3x{shape[0]}x{shape[1]}, {mode} '
                     f'(tier {tier.upper()})')
            text = md_table(
                ['backbone', 'params (M)', 'GMACs', 's / image',
                 f'speed vs fastest peer ({best_peer})', 'peak mem (MiB)',
                 'GPU'],
                [[f'**{r["model"]}**' if r['model'] == litv2_name
                  else r['model'], fmt(r['params_m'], '.1f'),
                  fmt(r['gmacs'], '.1f'), fmt(r['s'], '.3f'),
                  f'{r["ratio"]:.2f}x', fmt(r['mem_mib'], '.0f'),
                  fmt(r['fps'], '.1f') + ' FPS' if args.device == 'cuda'
                  else 'not measured'] for r in rows])
            if skipped:
                text += '\n\nNot built: ' + '; '.join(skipped)
            report.add(title, text, rows, chart=dict(
                label='model', value='fps', title=title,
                unit=f'images / s ({args.device}, {mode})',
                file=f'backbone_{tier}_{mode}.png'))
            del run, fns
        del models
        _trim()


def _mmdet_config(rel):
    import mmdet
    base = Path(mmdet.__file__).parent / '.mim' / 'configs'
    return str(base / rel)


DETECTORS = {
    'RetinaNet LITv2-S (w2)': 'configs/retinanet_litv2_s_w2.py',
    'RetinaNet R-50 (mmdet)': 'mmdet:retinanet/retinanet_r50_fpn_1x_coco.py',
    'RetinaNet Swin-T (mmdet)':
        'mmdet:swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py',
}


def random_detector_checkpoint(config, path):
    """Weights of the config's own initialisation (no pretrained file)."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    import mmdet_litv2  # noqa: F401
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict()}, path)


def bench_detectors(args, report):
    configs = {}
    for name, cfg in DETECTORS.items():
        configs[name] = (_mmdet_config(cfg[len('mmdet:'):])
                         if cfg.startswith('mmdet:') else str(REPO / cfg))
    fps = {n: [] for n in configs}
    info = {}
    with tempfile.TemporaryDirectory() as tmp:
        ckpts = {}
        for i, (name, cfg) in enumerate(configs.items()):
            ckpts[name] = Path(tmp) / f'det{i}.pth'
            random_detector_checkpoint(cfg, ckpts[name])
        names = list(configs)
        for r in range(args.det_rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                out = Path(tmp) / 'fps.json'
                cmd = [sys.executable, str(REPO / 'tools' / 'fps.py'),
                       configs[name], str(ckpts[name]), '--shape',
                       *map(str, args.backbone_shape), '--num-images',
                       str(args.det_images), '--warmup', '1', '--json',
                       str(out)]
                if args.threads:
                    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
                else:
                    env = None
                subprocess.run(cmd, check=True, cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL)
                info = json.loads(out.read_text())
                fps[name].append(info['fps'])
                print(f'  {name}: {info["fps"]:.3f} FPS', flush=True)
    med = {n: statistics.median(v) for n, v in fps.items()}
    best_peer = max((n for n in med if 'LITv2' not in n), key=med.get)
    rows = [dict(model=n, fps=med[n], ms=1000 / med[n],
                 ratio=med[n] / med[best_peer])
            for n in sorted(med, key=med.get, reverse=True)]
    title = (f'RetinaNet through tools/fps.py, {args.backbone_shape[0]}x'
             f'{args.backbone_shape[1]}, batch 1, fp32')
    text = md_table(
        ['detector', 'FPS', 'ms / image', f'vs fastest peer ({best_peer})',
         'GPU FPS'],
        [[r['model'], f'{r["fps"]:.3f}', f'{r["ms"]:.0f}',
          f'{r["ratio"]:.2f}x',
          'not measured' if info.get('device') != 'cuda'
          else f'{r["fps"]:.1f}'] for r in rows])
    text += (f'\n\nRandom weights from each config\'s own initialisation '
             f'(one checkpoint per config), random images, '
             f'{args.det_images} images after 1 warm-up per run, median of '
             f'{args.det_rounds} alternating rounds, each run its own '
             'process.')
    report.add(title, text, rows, chart=dict(
        label='model', value='fps', title=title,
        unit='images / s (whole detector, CPU)', file='detector_fps.png'))


# -- part 3: one attention layer --------------------------------------------

class TokenAttention(torch.nn.Module):
    """Adapts an attention layer to ``(B, N, C)`` tokens of an HxW map."""

    def __init__(self, layer, kind, size):
        super().__init__()
        self.layer, self.kind, self.size = layer, kind, size

    def forward(self, x):
        h, w = self.size
        if self.kind == 'bnc':
            return self.layer(x)
        if self.kind == 'bnc_hw':
            return self.layer(x, self.size)
        if self.kind == 'bnc_h_w':
            return self.layer(x, h, w)
        b, _, c = x.shape
        if self.kind == 'bhwc':
            return self.layer(x.view(b, h, w, c)).view(b, h * w, c)
        if self.kind == 'swin':
            return self.layer._attn(x.view(b, h, w, c)).reshape(b, h * w, c)
        raise ValueError(self.kind)


def attention_layers(dim, heads, size):
    """(name, module) of the paper's attention benchmark."""
    from timm.models import (
        pvt_v2,
        swin_transformer,
        twins,
        vision_transformer,
        xcit,
    )

    from litv2 import HiLo
    layers = {
        'HiLo': TokenAttention(HiLo(dim, heads, window_size=2, alpha=0.9),
                               'bhwc', size),
        'MSA (ViT)': TokenAttention(
            vision_transformer.Attention(dim, heads, qkv_bias=True), 'bnc',
            size),
        'SRA (PVTv2, sr 2)': TokenAttention(
            pvt_v2.Attention(dim, heads, sr_ratio=2, qkv_bias=True),
            'bnc_hw', size),
        'XCA (XCiT)': TokenAttention(xcit.XCA(dim, heads, qkv_bias=True),
                                     'bnc', size),
        'locally-grouped (Twins, 7x7)': TokenAttention(
            twins.LocallyGroupedAttn(dim, heads, ws=7), 'bnc_hw', size),
        'global sub-sampled (Twins, sr 2)': TokenAttention(
            twins.GlobalSubSampleAttn(dim, heads, sr_ratio=2), 'bnc_hw',
            size),
    }
    for name, shift in (('local window (Swin, 7x7)', 0),
                        ('shifted window (Swin, 7x7)', 3)):
        block = swin_transformer.SwinTransformerBlock(
            dim, input_resolution=size, num_heads=heads, window_size=7,
            shift_size=shift)
        # Only the attention part of the block (window partition, shift,
        # attention, reverse), no norm or MLP.
        layers[name] = TokenAttention(block, 'swin', size)
    return layers


def bench_attention(args, report):
    dim, heads, side, batch = 768, 12, 14, args.attn_batch
    size = (side, side)
    layers = {n: m.to(args.device).eval()
              for n, m in attention_layers(dim, heads, size).items()}
    one = torch.randn(1, side * side, dim, device=args.device)
    counts = {}
    for n, m in layers.items():
        inner = m.layer
        params = sum(p.numel() for p in inner.parameters()) / 1e6
        if m.kind == 'swin':  # the block's norms and MLP are not run
            params = sum(p.numel() for p in inner.attn.parameters()) / 1e6
        counts[n] = (params, count(m, one)[1])
    x = torch.randn(batch, side * side, dim, device=args.device)
    for mode in args.modes:
        run = {n: prepare(m, mode) for n, m in layers.items()}
        fns = {n: (lambda m=m: m(x)) for n, m in run.items()}
        with torch.no_grad(), mode_context(mode, args.device):
            t, mem = interleaved(fns, args.attn_rounds, args.device,
                                 memory=(mode == 'fp32'))
        ips = {n: batch / s for n, s in t.items()}
        best_peer = max((n for n in ips if n != 'HiLo'), key=ips.get)
        rows = [dict(model=n, params_m=counts[n][0], gmacs=counts[n][1],
                     img_s=ips[n], ratio=ips[n] / ips[best_peer],
                     mem_mib=mem.get(n), paper_cpu=PAPER_ATTN_CPU.get(n))
                for n in sorted(ips, key=ips.get, reverse=True)]
        title = (f'One attention layer: dim {dim}, {heads} heads, '
                 f'{side}x{side} tokens, batch {batch}, {mode}')
        text = md_table(
            ['layer', 'params (M)', 'GMACs / image', f'{args.device} img/s',
             f'vs fastest other ({best_peer})', 'peak mem (MiB)',
             'GPU img/s', 'paper CPU img/s'],
            [[f'**{r["model"]}**' if r['model'] == 'HiLo' else r['model'],
              fmt(r['params_m'], '.2f'), fmt(r['gmacs'], '.3f'),
              fmt(r['img_s'], '.0f'), f'{r["ratio"]:.2f}x',
              fmt(r['mem_mib'], '.0f'),
              fmt(r['img_s'], '.0f') if args.device == 'cuda'
              else 'not measured', fmt(r['paper_cpu'], 'd')]
             for r in rows])
        text += ('\n\nHiLo: window 2, alpha 0.9 (the LITv2 setting). Swin: '
                 'the window-attention part of a timm block (partition, '
                 'shift, attention, reverse; no norm or MLP), windows 7x7, '
                 'shift 3.')
        report.add(title, text, rows, chart=dict(
            label='model', value='img_s', title=title,
            unit=f'images / s ({args.device}, {mode})',
            file=f'attention_{mode}.png'))


# -- part 4: training step against the baseline ------------------------------

def bench_train(args, report):
    from benchmarks.bench_hilo import build_pair, rel_err  # noqa: F401
    shape = args.train_shape
    x = torch.randn(args.train_batch, 3, *shape, device=args.device,
                    generator=None)
    modes = [m for m in args.modes if m in ('fp32', 'compile')]
    rows = []
    for tier in args.train_tiers:
        baseline, project = build_pair(tier, 2)
        baseline.to(args.device).train()
        project.to(args.device).train()
        for mode in modes:
            run = dict(baseline=prepare(baseline, mode),
                       project=prepare(project, mode))

            def step(m):
                outs = m(x)
                sum(o.square().mean() for o in outs).backward()

            fns = {n: (lambda m=m: step(m)) for n, m in run.items()}
            t, _ = interleaved(fns, args.train_rounds, args.device)
            for m in (baseline, project):
                m.zero_grad(set_to_none=True)
            rows.append(dict(model=f'LITv2-{tier.upper()}', mode=mode,
                             baseline_s=t['baseline'],
                             project_s=t['project'],
                             speedup=t['baseline'] / t['project']))
            print(f'  train {tier} {mode}: {t}', flush=True)
        del baseline, project
        _trim()
    title = (f'Training step of the backbone, {args.train_batch}x3x'
             f'{shape[0]}x{shape[1]}: project vs the reference algorithm')
    text = md_table(
        ['model', 'mode', 'baseline s', 'project s', 'speed-up'],
        [[r['model'], 'eager fp32' if r['mode'] == 'fp32' else
          'torch.compile fp32', f'{r["baseline_s"]:.2f}',
          f'{r["project_s"]:.2f}', f'{r["speedup"]:.2f}x'] for r in rows])
    text += ('\n\nForward + backward of the sum of squared mean outputs, '
             'train mode, HiLo window 2; baseline: '
             '`litv2/testing/reference.py` (explicit attention, '
             'torchvision deformable conv) on the same weights.')
    report.add(title, text, rows)


# -- report ------------------------------------------------------------------

class Report:
    def __init__(self, args, machine):
        self.args, self.machine = args, machine
        self.tables = []

    def add(self, title, text, rows, chart=None):
        self.tables.append(dict(title=title, text=text, rows=rows,
                                chart=chart))
        print(f'\n### {title}\n\n{text}\n', flush=True)

    def write(self, command, charts=True, quiet=False):
        machine = self.machine.summary()
        lines = ['# LITv2 against its peers', '',
                 f'`{command}`', '', f'Measured on: {machine}.', '',
                 'Median of interleaved rounds in one process (see '
                 '`benchmarks/bench_peers.py`); fp32 = eager float32, bf16 = '
                 'eager under `torch.autocast(bfloat16)`, compile = '
                 '`torch.compile` (default options, fp32), '
                 'compile-nolayout = `torch.compile` with inductor\'s '
                 '`layout_optimization=False`. GMACs: '
                 '`FlopCounterMode` multiply-adds of one image with '
                 'PyTorch\'s fused attention counted on every device '
                 '(`benchmarks/flop_count.py`), the same counter for every '
                 'model. Peak memory: resident memory '
                 'one forward adds (CPU) / `max_memory_allocated` (CUDA). '
                 'GPU columns: not measured when no GPU was present.', '']
        for t in self.tables:
            lines += [f'## {t["title"]}', '', t['text'], '']
            if t.get('chart') and self.args.figures:
                lines += [f'![{t["title"]}]({Path(self.args.figures).name}/'
                          f'{t["chart"]["file"]})', '']
        results = dict(machine=machine, command=command, tables=self.tables)
        if self.args.json:
            Path(self.args.json).write_text(json.dumps(results, indent=1))
        if self.args.markdown:
            Path(self.args.markdown).write_text('\n'.join(lines))
        if self.args.figures and charts:
            from benchmarks.plot_peers import (
                charts_from_results,
                have_matplotlib,
            )
            if have_matplotlib():
                for p in charts_from_results(results,
                                             Path(self.args.figures)):
                    print(f'wrote {p}')
            else:
                print('matplotlib not installed (requirements/bench.txt): '
                      'no PNG charts')
        if not quiet:
            print(f'\n{machine}')


# Measured where the CPU has no bf16 instructions, bf16 autocast times
# oneDNN's emulation, not the models.
BF16_EMULATED = (
    'This CPU ({cpu}) has no bf16 instructions (AVX512-BF16 or AMX), so '
    'oneDNN emulates bf16 and the times would say nothing about the '
    'models: on an AMD EPYC with AVX2 (2 threads, 2026-12-05) LITv2-S\'s '
    'classifier ran 1.2 img/s under bf16 autocast at batch 16 against '
    '15.6 in fp32, and ResNet-50\'s backbone took 124 s for one 800x1280 '
    'image against 1.4 s. `--emulated-bf16` measures it anyway.')


def leave_out_emulated_bf16(args, report):
    """Drop ``bf16`` from ``args.modes`` on a CPU that emulates it (unless
    ``--emulated-bf16``), saying why in the report."""
    if (args.device == 'cpu' and 'bf16' in args.modes
            and not native_bf16() and not args.emulated_bf16):
        args.modes = [m for m in args.modes if m != 'bf16']
        report.add('bf16: not measured', BF16_EMULATED.format(
            cpu=cpu_description()), [])


PARTS = ('cls', 'backbone', 'detector', 'attention', 'train')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--parts', nargs='+', choices=PARTS,
                   default=['cls', 'backbone', 'detector', 'attention',
                            'train'])
    p.add_argument('--quick', action='store_true',
                   help='a few minutes: tier S, batch 16, one round, no '
                   'detector')
    p.add_argument('--modes', nargs='+', default=['fp32'],
                   choices=['fp32', 'bf16', 'fp16', 'compile',
                            'compile-nolayout'])
    p.add_argument('--tiers', nargs='+', default=['s', 'm', 'b'],
                   choices=list(PEERS))
    p.add_argument('--batches', nargs='+', type=int, default=[64, 16])
    p.add_argument('--rounds', type=int, default=2,
                   help='timed rounds (tier S classifiers and backbones)')
    p.add_argument('--mb-batches', nargs='+', type=int, default=[16],
                   help='batch sizes of the M and B tiers (64 too for the '
                   "paper's)")
    p.add_argument('--mb-rounds', type=int, default=2)
    p.add_argument('--peers', nargs='+',
                   help='only these timm peers (names of PEERS / '
                   'BACKBONE_PEERS), e.g. for --modes compile')
    p.add_argument('--backbone-tiers', nargs='+', default=['s'],
                   choices=list(PEERS))
    p.add_argument('--backbone-shape', nargs=2, type=int,
                   default=[800, 1280])
    p.add_argument('--det-rounds', type=int, default=2)
    p.add_argument('--det-images', type=int, default=1)
    p.add_argument('--attn-batch', type=int, default=64)
    p.add_argument('--attn-rounds', type=int, default=5)
    p.add_argument('--train-tiers', nargs='+', default=['s', 'm', 'b'],
                   choices=list(PEERS))
    p.add_argument('--train-shape', nargs=2, type=int, default=[224, 224])
    p.add_argument('--train-batch', type=int, default=2)
    p.add_argument('--train-rounds', type=int, default=3)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu', choices=['cpu', 'cuda'])
    p.add_argument('--threads', type=int)
    p.add_argument('--emulated-bf16', action='store_true',
                   help='measure --modes bf16 on a CPU without bf16 '
                   'instructions too (left out by default)')
    p.add_argument('--markdown', help='write the report here')
    p.add_argument('--json', help='write the results here')
    p.add_argument('--figures', help='folder of the PNG charts')
    args = p.parse_args(argv)
    if args.quick:
        args.tiers = ['s']
        args.rounds = 1
        args.batches = [16]
        args.train_tiers = ['s']
        args.train_rounds = 1
        args.attn_rounds = 2
        args.parts = [q for q in args.parts if q != 'detector']
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    machine = Machine(args.device)
    report = Report(args, machine)
    leave_out_emulated_bf16(args, report)
    command = ('python benchmarks/bench_peers.py ' + ' '.join(
        sys.argv[1:] if argv is None else argv)).strip()
    runners = dict(cls=bench_classifiers, backbone=bench_backbones,
                   detector=bench_detectors, attention=bench_attention,
                   train=bench_train)
    for part in PARTS:
        if part in args.parts:
            print(f'== {part} ({time.time() - machine.start:.0f} s)',
                  flush=True)
            try:
                runners[part](args, report)
            except Exception:  # report it, go on with the other parts
                err = traceback.format_exc()
                print(err, flush=True)
                report.add(f'Part {part}: failed',
                           '```\n' + err.strip().splitlines()[-1] + '\n```',
                           [])
            # What is measured so far is kept if a later part is stopped.
            report.write(command, charts=False, quiet=True)
    report.write(command)


if __name__ == '__main__':
    main()
