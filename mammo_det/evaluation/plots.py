"""PR curves, FROC curves and the BI-RADS confusion matrix as PNGs (matplotlib, no display needed)."""
from __future__ import annotations

import numpy as np

from .metrics import FPPI_POINTS, HEADLINE_FPPI, fppi_key


def _plt():
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    from mammo_det.fileio import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches='tight')


def _per_category(metrics: dict, path: str, draw, legend_loc: str, **axes) -> None:
    """One figure, ``draw(ax, name, curves, per_category_metrics)`` for each category with ground truth."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, c in metrics['_curves'].items():
        if metrics['per_category'][name]['num_gt']:
            draw(ax, name, c, metrics['per_category'][name])
    ax.set(**axes)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # nothing to label without detections
        ax.legend(fontsize=7, loc=legend_loc)
    _save(fig, path)
    plt.close(fig)


def plot_pr(metrics: dict, path: str) -> None:
    """Precision-recall at IoU 0.5 (pycocotools' 101-point interpolation), one curve per category with boxes."""
    def draw(ax, name, c, v):
        ax.plot(c['pr_recall'], np.clip(c['pr_precision'], 0, None), label=f"{name} (AP50 {v['AP50']:.3f})")

    _per_category(metrics, path, draw, 'lower left', xlabel='recall', ylabel='precision', xlim=(0, 1),
                  ylim=(0, 1.02), title='Precision-recall, IoU 0.5')


def plot_froc(metrics: dict, path: str) -> None:
    """Recall against false positives per image on a log axis, one curve per category, the FPPI points marked."""
    def draw(ax, name, c, v):
        if len(c['froc_fppi']):
            label = f"{name} (R@{HEADLINE_FPPI:g} {v['recall_at_fppi'][fppi_key(HEADLINE_FPPI)]:.3f})"
            ax.step(np.maximum(c['froc_fppi'], 1e-3), c['froc_recall'], where='post', label=label)
        for f in FPPI_POINTS:
            ax.axvline(f, color='grey', lw=0.5, ls=':')

    _per_category(metrics, path, draw, 'upper left', xscale='log', xlabel='false positives per image',
                  ylabel='recall', ylim=(0, 1.02), xlim=(1e-2, 8), title=f"FROC, IoU {metrics['froc_iou']}")


def plot_birads_confusion(birads: dict, path: str) -> None:
    plt = _plt()
    m = np.asarray(birads['confusion'])
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(m, cmap='Blues')
    labels = [f'BI-RADS {b}' for b in birads['labels']]
    ax.set_xticks(range(3), labels, fontsize=8)
    ax.set_yticks(range(3), labels, fontsize=8)
    for i in range(3):
        for j in range(3):
            ax.text(j, i, str(m[i, j]), ha='center', va='center', color='black' if m[i, j] < m.max() / 2 else 'white')
    acc = birads['accuracy']
    ax.set(xlabel='predicted', ylabel='ground truth',
           title=f"BI-RADS on matched boxes (acc {acc:.3f})" if acc is not None else 'BI-RADS (no matches)')
    _save(fig, path)
    plt.close(fig)


def plot_forest(rows: list, reference: str, path: str) -> None:
    """Forest plot: each (model, category, metric) difference to the reference with its interval."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.28 * len(rows) + 1)))
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows):
        if r['delta'] is None:
            continue
        if r['lo'] is not None:
            ax.plot([r['lo'], r['hi']], [yi, yi], color='tab:blue', lw=1.5)
        ax.plot([r['delta']], [yi], 'o', color='tab:blue' if r['p'] is None or r['p'] >= 0.05 else 'tab:red', ms=4)
    ax.axvline(0, color='grey', lw=0.8)
    ax.set_yticks(y, [f"{r['model']}: {r['category']} {r['metric']}" for r in rows], fontsize=7)
    ax.set(xlabel=f'difference to {reference} (red: p < 0.05)', title='Paired bootstrap differences')
    ax.grid(alpha=0.3, axis='x')
    _save(fig, path)
    plt.close(fig)
