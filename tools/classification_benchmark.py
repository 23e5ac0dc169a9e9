"""Throughput and memory of the LITv2 ImageNet classifiers, the paper's way.

    python tools/classification_benchmark.py [--models litv2_s litv2_m ...]
        [--batch-size 64] [--runs 30] [--warmup 50] [--device cpu|cuda]
        [--threads N] [--amp [bf16|fp16]]
        [--skip flops throughput test-mem train-mem]
        [--markdown FILE]

The paper (RTX 3090, batch 64): throughput = images per second of the
forward pass in eval mode, averaged over 30 runs after warm-up; memory = the
peak of ``torch.cuda.max_memory_allocated()`` in testing (forward, no grad)
and in training. Here, for each model at its input size (224, or 384 for
``litv2_b_384``):

* FLOPs (one image, ``litv2.flops``): the paper's classification
  convention, which counts DTM's deformable conv (``FlopCount.complete``);
* throughput: ``--warmup`` forwards, then ``--runs`` timed forwards of one
  random batch (``torch.cuda.synchronize`` around the timing on CUDA);
  images/s = runs * batch / elapsed;
* test memory: one forward without grad, eval mode;
* train memory: one forward + backward of the cross-entropy of random labels
  in train mode (no optimizer state).

Memory on CUDA is ``torch.cuda.max_memory_allocated()`` after
``reset_peak_memory_stats()``, model weights included. On CPU it is the
increase of the process's peak resident set size (``ru_maxrss``) over its
size before the model was built, measured in a fresh process per
measurement (the peak RSS cannot be reset); it includes the weights, the
input and whatever the allocator keeps, so it is larger than the tensors'
own peak. CPU figures depend on the number of threads and on other load.
"""
import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from mmengine.utils import ProgressBar

MODELS = ('litv2_s', 'litv2_m', 'litv2_b', 'litv2_b_384')
MEASURES = ('flops', 'throughput', 'test-mem', 'train-mem')


def build(name: str, device: str):
    import timm

    import litv2.timm_models  # noqa: F401  (registers the models)
    model = timm.create_model(name).to(device)
    size = model.pretrained_cfg['input_size']
    return model, size


AMP_DTYPES = dict(bf16=torch.bfloat16, fp16=torch.float16)


def autocast(device: str, amp):
    """``torch.autocast`` with ``amp`` ('bf16', 'fp16'); None: fp32."""
    return torch.autocast(device, dtype=AMP_DTYPES.get(amp, torch.float32),
                          enabled=amp is not None)


def synchronize(device: str):
    if device == 'cuda':
        torch.cuda.synchronize()


def throughput(name, device, batch_size, runs, warmup, amp):
    model, size = build(name, device)
    x = torch.randn(batch_size, *size, device=device)
    return timed_forwards(model, x, runs, warmup, amp)


def timed_forwards(model, x, runs, warmup, amp):
    """Images per second of ``model`` in eval mode on the batch ``x``, the
    paper's way: ``warmup`` forwards, then ``runs`` timed ones (no grad,
    under autocast with ``amp``), the device synchronised before and
    after."""
    device = x.device.type
    model.eval()
    with torch.no_grad(), autocast(device, amp):
        for _ in range(warmup):
            model(x)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(runs):
            model(x)
        synchronize(device)
        elapsed = time.perf_counter() - start
    return runs * x.shape[0] / elapsed


def gflops(name):
    from litv2_openmmlab.flops import count_flops
    model, size = build(name, 'cpu')
    with torch.no_grad():
        count = count_flops(model.eval(), (torch.zeros(1, *size), ))
    return count.complete / 1e9


def _step(model, x, device, train, amp):
    if train:
        model.train()
        labels = torch.randint(0, model.num_classes, (x.shape[0], ),
                               device=device)
        with autocast(device, amp):
            loss = torch.nn.functional.cross_entropy(model(x), labels)
        loss.backward()
    else:
        model.eval()
        with torch.no_grad(), autocast(device, amp):
            model(x)
    synchronize(device)


def _current_rss() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize()


_CHILD_FLAG = '--peak-rss-child'


def _peak_memory_child(name, train, batch_size, amp, threads):
    """Runs in a fresh process: prints the peak RSS growth of one CPU step."""
    torch.set_num_threads(threads)
    import timm  # noqa: F401  (imports outside the measured growth)

    import litv2.timm_models  # noqa: F401
    before = _current_rss()
    model, size = build(name, 'cpu')
    x = torch.randn(batch_size, *size)
    _step(model, x, 'cpu', train, amp)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(peak - before)


def peak_memory(name, device, train, batch_size, amp, threads):
    """Peak bytes of one test (forward) or train (forward + backward) step."""
    if device == 'cuda':
        model, size = build(name, device)
        x = torch.randn(batch_size, *size, device=device)
        peak = cuda_peak_memory(model, x, train, amp)
        del model, x
        torch.cuda.empty_cache()
        return peak
    child = subprocess.run(
        [sys.executable, __file__, _CHILD_FLAG, name, str(int(train)),
         str(batch_size), str(amp), str(threads)],
        capture_output=True, text=True)
    if child.returncode != 0:
        raise RuntimeError(f'memory measurement of {name} failed in its '
                           f'process:\n{child.stderr}')
    return int(child.stdout.split()[-1])


def cuda_peak_memory(model, x, train, amp):
    """``torch.cuda.max_memory_allocated()`` of one test (forward, no grad)
    or train (forward + backward) step of ``model`` on the CUDA batch
    ``x``: weights, input and gradients included. The gradients of an
    earlier step are freed first; cuDNN's autotuning is off for the step
    (its trial workspaces are no part of the model's need)."""
    model.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        torch.cuda.reset_peak_memory_stats()
        _step(model, x, 'cuda', train, amp)
        peak = torch.cuda.max_memory_allocated()
    finally:
        torch.backends.cudnn.benchmark = benchmark
    model.zero_grad(set_to_none=True)
    return peak


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', default=list(MODELS),
                        choices=MODELS)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--runs', type=int, default=30,
                        help='timed forwards (the paper: 30)')
    parser.add_argument('--warmup', type=int, default=50,
                        help='untimed forwards first (the reference: 50)')
    parser.add_argument('--device', default=None, choices=('cpu', 'cuda'),
                        help='default: cuda if available')
    parser.add_argument('--threads', type=int, default=None,
                        help='CPU threads (default: torch\'s)')
    parser.add_argument('--amp', nargs='?', metavar='{bf16,fp16}',
                        const='default',
                        help='autocast with this dtype (without one: fp16 on '
                        'CUDA, bf16 on CPU; bf16 on a CPU needs bf16 '
                        'arithmetic); the paper measured with apex O1')
    parser.add_argument('--skip', nargs='+', default=[], choices=MEASURES)
    parser.add_argument('--markdown', help='also write the table here')
    args = parser.parse_args(argv)
    for name in ('batch_size', 'runs'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    if args.warmup < 0:
        parser.error('--warmup must be >= 0')
    if args.threads is not None and args.threads < 1:
        parser.error('--threads must be >= 1')
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    elif args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    if args.amp not in (None, 'default', *AMP_DTYPES):
        parser.error(f'--amp: choose bf16 or fp16, got {args.amp!r}')
    if args.amp == 'default':
        args.amp = 'fp16' if args.device == 'cuda' else 'bf16'
    from litv2_openmmlab.engine.optim import amp_option_error
    amp_error = amp_option_error(args.amp, args.device)
    if amp_error:
        parser.error(amp_error)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    torch.backends.cudnn.benchmark = True
    where = (torch.cuda.get_device_name() if args.device == 'cuda' else
             f'CPU, {threads} threads')
    header = (f'LITv2 classifiers on {where}: batch {args.batch_size}, '
              f'{args.runs} timed runs after {args.warmup} warm-up, '
              f'{args.amp + " autocast" if args.amp else "fp32"}; memory = '
              + ('torch.cuda.max_memory_allocated' if args.device == 'cuda'
                 else 'peak RSS growth of a fresh process'))
    lines = [header, '',
             '| model | input | params (M) | FLOPs (G) | throughput (img/s) | '
             'test mem (GB) | train mem (GB) |',
             '|---|---|---|---|---|---|---|']
    tasks = [(n, m) for n in args.models for m in MEASURES
             if m not in args.skip]
    bar = ProgressBar(len(tasks))
    results = {n: {} for n in args.models}
    for name, measure in tasks:
        if measure == 'flops':
            value = f'{gflops(name):.2f}'
        elif measure == 'throughput':
            value = f'{throughput(name, args.device, args.batch_size, args.runs, args.warmup, args.amp):.1f}'  # noqa: E501
        else:
            peak = peak_memory(name, args.device, measure == 'train-mem',
                               args.batch_size, args.amp, threads)
            value = f'{peak / 1e9:.2f}'
        results[name][measure] = value
        bar.update()
    sys.stdout.write('\n')
    for name in args.models:
        model, size = build(name, 'cpu')
        params = sum(p.numel() for p in model.parameters()) / 1e6
        del model
        row = results[name]
        lines.append(f'| {name} | {size[1]} | {params:.2f} | '
                     f'{row.get("flops", "-")} | '
                     f'{row.get("throughput", "-")} | '
                     f'{row.get("test-mem", "-")} | '
                     f'{row.get("train-mem", "-")} |')
    report = '\n'.join(lines) + '\n'
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report)
    return results


if __name__ == '__main__':
    if sys.argv[1:2] == [_CHILD_FLAG]:
        name, train, batch, amp, threads = sys.argv[2:]
        _peak_memory_child(name, bool(int(train)), int(batch),
                           None if amp == 'None' else amp, int(threads))
    else:
        main()
