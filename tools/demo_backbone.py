"""Run a LITv2 backbone on an image and print its feature maps.

    python tools/demo_backbone.py [IMAGE] [--arch s|m|b] [--window 2|4]
        [--checkpoint FILE]

Without a checkpoint the weights are the paper's random initialisation (the
released weights cannot be downloaded on every machine); with one, any
reference ImageNet/detection/segmentation checkpoint is loaded.
"""
import argparse
import time
from pathlib import Path

import mmcv
import torch

from litv2 import LITV2_ARCHS, local_windows
from litv2_openmmlab import LITv2

DEFAULT_IMAGE = Path(__file__).resolve().parent.parent / 'demo' / 'demo.png'
# ImageNet statistics, RGB order, as the configs' data preprocessors use.
MEAN = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('image', nargs='?', default=str(DEFAULT_IMAGE))
    parser.add_argument('--arch', choices=sorted(LITV2_ARCHS), default='s')
    parser.add_argument('--window', type=int, default=2,
                        help='HiLo window of stage 3 (local_ws=[0,0,s,1])')
    parser.add_argument('--checkpoint', help='reference checkpoint to load')
    return parser.parse_args()


def main():
    args = parse_args()
    if not Path(args.image).is_file():
        raise SystemExit(f'image not found: {args.image}')
    image = mmcv.imread(args.image, channel_order='rgb')
    x = (torch.from_numpy(image).permute(2, 0, 1).float() - MEAN) / STD
    init_cfg = (dict(type='Pretrained', checkpoint=args.checkpoint)
                if args.checkpoint else None)
    model = LITv2(**LITV2_ARCHS[args.arch],
                  local_ws=local_windows(args.window), init_cfg=init_cfg)
    model.init_weights()
    model.eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f'LITv2-{args.arch.upper()} (local_ws={model.local_ws}, '
          f'alpha={model.alpha}): {params:.2f} M parameters')
    print(f'image {args.image}: {image.shape[1]}x{image.shape[0]} (WxH)')
    with torch.no_grad():
        start = time.perf_counter()
        feats = model(x[None])
        elapsed = time.perf_counter() - start
    for i, f in enumerate(feats):
        stride = image.shape[0] / f.shape[2]
        print(f'  stage {i + 1}: {tuple(f.shape)}  stride ~{stride:.0f}  '
              f'mean {f.mean():+.3f} std {f.std():.3f}')
    print(f'forward: {elapsed * 1000:.0f} ms on CPU '
          f'({torch.get_num_threads()} threads)')


if __name__ == '__main__':
    main()
