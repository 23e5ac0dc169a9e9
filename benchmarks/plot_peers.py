"""Bar charts of ``benchmarks/bench_peers.py`` results, in the style of the
paper's speed figure: one horizontal bar per model, sorted by speed, LITv2
highlighted, the value written at the end of each bar.

    python benchmarks/plot_peers.py benchmarks/results_peers.json [--out DIR]
    python benchmarks/plot_peers.py benchmarks/results_gpu.json

re-draws every chart of a results file (``bench_peers.py`` draws them itself
when matplotlib is installed: ``requirements/bench.txt``), or the charts of
a ``tools/gpu_check.py`` report (``benchmarks/plot_gpu.py``).
"""
import argparse
import json
import sys
import textwrap
from pathlib import Path

LITV2_COLOR = '#d62728'
PEER_COLOR = '#7f9fbf'


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def bar_chart(path, title, labels, values, unit, highlight=None,
              note=None):
    """One horizontal bar per (label, value), fastest on top.

    ``highlight``: predicate on the label for the project's bars.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    highlight = highlight or (lambda name: name.lower().startswith('litv2')
                              or name.lower().startswith('hilo'))
    pairs = sorted(((v, n) for n, v in zip(labels, values) if v is not None),
                   key=lambda p: p[0])
    if not pairs:
        return None
    fig_h = 1.4 + 0.38 * len(pairs)
    fig, ax = plt.subplots(figsize=(6.4, fig_h))
    ys = range(len(pairs))
    colors = [LITV2_COLOR if highlight(n) else PEER_COLOR for _, n in pairs]
    ax.barh(list(ys), [v for v, _ in pairs], color=colors, height=0.7)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([n for _, n in pairs], fontsize=9)
    top = max(v for v, _ in pairs)
    for y, (v, _) in zip(ys, pairs):
        ax.text(v + 0.01 * top, y, f'{v:.3g}', va='center', fontsize=8)
    ax.set_xlim(0, top * 1.15)
    ax.set_xlabel(unit)
    ax.set_title(textwrap.fill(title, 55), fontsize=10)
    if note:
        fig.text(0.01, 0.005, textwrap.fill(note, 120), fontsize=5.5,
                 color='#555555')
    for side in ('top', 'right'):
        ax.spines[side].set_visible(False)
    fig.tight_layout(rect=(0, 0.05 if note else 0, 1, 1))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def charts_from_results(results: dict, out_dir: Path) -> list:
    """Every chart of a ``bench_peers.py`` results dict; returns the paths."""
    written = []
    note = results.get('machine', '')
    for table in results.get('tables', []):
        chart = table.get('chart')
        if not chart:
            continue
        rows = table['rows']
        labels = [r[chart['label']] for r in rows]
        values = [r.get(chart['value']) for r in rows]
        path = bar_chart(out_dir / chart['file'], chart['title'], labels,
                         values, chart['unit'], note=note)
        if path:
            written.append(path)
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('results', help='JSON written by bench_peers.py or '
                        'tools/gpu_check.py')
    parser.add_argument('--out', help='folder of the PNGs (default: next '
                        'to the JSON, figures_peers/ or figures_gpu/)')
    args = parser.parse_args()
    results = json.loads(Path(args.results).read_text())
    gpu_check = 'sections' in results  # tools/gpu_check.py's report
    out = (Path(args.out) if args.out else Path(args.results).parent
           / ('figures_gpu' if gpu_check else 'figures_peers'))
    if gpu_check:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from benchmarks.plot_gpu import charts
        written = charts(results, out)
    else:
        written = charts_from_results(results, out)
    for path in written:
        print(path)


if __name__ == '__main__':
    main()
