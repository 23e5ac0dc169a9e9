"""Bar charts of a ``tools/gpu_check.py`` report: classifier throughput per
precision and detector / segmentor FPS, in the style of ``plot_peers.py``.

    python benchmarks/plot_peers.py benchmarks/results_gpu.json [--out DIR]
"""
from pathlib import Path

from benchmarks.plot_peers import bar_chart


def charts(report: dict, out_dir: Path) -> list:
    header = report['header']
    note = f'{header["device"]}, torch {header["torch"]}'
    written = []
    for section in report['sections']:
        rows = section.get('data')
        title = section['title']
        if title.startswith('Classifiers') and rows:
            for tag in ('fp32', 'fp16', 'bf16'):
                values = [r.get(f'{tag}_img_s') for r in rows]
                written.append(bar_chart(
                    out_dir / f'cls_{tag}.png',
                    f'{title}, {tag}' + ('' if tag == 'fp32' else
                                         ' autocast'),
                    [r['model'] for r in rows], values, 'images / s',
                    note=note))
        elif title.startswith('Detectors') and rows:
            for tag in ('fp32', 'fp16'):
                written.append(bar_chart(
                    out_dir / f'detectors_{tag}.png',
                    f'tools/fps.py, batch 1, {tag}',
                    [f'{r["model"]} ({r["shape"][0]}x{r["shape"][1]})'
                     for r in rows], [r.get(tag) for r in rows],
                    'images / s', note=note))
    return [p for p in written if p]

