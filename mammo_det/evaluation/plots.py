"""PR curves, FROC curves, the BI-RADS confusion matrix, the paired-difference forest plot and the leaderboard as
PNGs. Figures are drawn with matplotlib's object API on the Agg canvas: no pyplot (whose import alone costs half a
second of every ``mammo-det evaluate``), no display."""
from __future__ import annotations

import numpy as np

from .keys import FPPI_POINTS, HEADLINE_FPPI, fppi_key, recall_column


def _figure(figsize):
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.add_subplot()


def _save(fig, path: str) -> None:
    from mammo_det.fileio import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches='tight')


def _per_category(metrics: dict, draw, legend_loc: str, **axes) -> tuple:
    """(figure, axes): ``draw(ax, name, curves, per_category_metrics)`` for each category with ground truth."""
    fig, ax = _figure((6, 5))
    for name, c in metrics['_curves'].items():
        if metrics['per_category'][name]['num_gt']:
            draw(ax, name, c, metrics['per_category'][name])
    ax.set(**axes)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # nothing to label without detections
        ax.legend(fontsize=7, loc=legend_loc)
    return fig, ax


def plot_pr(metrics: dict, path: str) -> None:
    """Precision-recall at IoU 0.5 (pycocotools' 101-point interpolation), one curve per category with boxes."""
    def draw(ax, name, c, v):
        ax.plot(c['pr_recall'], np.clip(c['pr_precision'], 0, None), label=f"{name} (AP50 {v['AP50']:.3f})")

    fig, _ = _per_category(metrics, draw, 'lower left', xlabel='recall', ylabel='precision', xlim=(0, 1),
                           ylim=(0, 1.02), title='Precision-recall, IoU 0.5')
    _save(fig, path)


def step_corners(y: np.ndarray) -> np.ndarray:
    """Indices of the points a post-step curve through ``y`` turns at: the first and last of each run of equal
    values (the points inside a run lie on the same horizontal line). A FROC curve of 20,000 detections keeps
    about twice its true positives, so drawing it costs milliseconds instead of a tenth of a second."""
    y = np.asarray(y)
    if len(y) < 3:
        return np.arange(len(y))
    turn = np.r_[True, y[1:] != y[:-1]] | np.r_[y[1:] != y[:-1], True]
    return np.flatnonzero(turn)


def plot_froc(metrics: dict, path: str) -> None:
    """Recall against false positives per image on a log axis, one curve per category, the FPPI points marked."""
    def draw(ax, name, c, v):
        if len(c['froc_fppi']):
            label = f"{name} (R@{HEADLINE_FPPI:g} {v['recall_at_fppi'][fppi_key(HEADLINE_FPPI)]:.3f})"
            keep = step_corners(c['froc_recall'])
            ax.step(np.maximum(c['froc_fppi'][keep], 1e-3), c['froc_recall'][keep], where='post', label=label)

    fig, ax = _per_category(metrics, draw, 'upper left', xscale='log', xlabel='false positives per image',
                            ylabel='recall', ylim=(0, 1.02), xlim=(1e-2, 8), title=f"FROC, IoU {metrics['froc_iou']}")
    for f in FPPI_POINTS:
        ax.axvline(f, color='grey', lw=0.5, ls=':', zorder=0)
    _save(fig, path)


def plot_birads_confusion(birads: dict, path: str) -> None:
    m = np.asarray(birads['confusion'])
    fig, ax = _figure((4, 3.6))
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


def plot_forest(rows: list, reference: str, path: str) -> None:
    """Forest plot: each (model, category, metric) difference to the reference with its interval."""
    fig, ax = _figure((7, max(2.5, 0.28 * len(rows) + 1)))
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


def plot_leaderboard(rows: list, path: str) -> None:
    """mAP (with its interval, where every config has one) and the headline recall of each config."""
    fig, ax = _figure((max(5, 1.6 * len(rows)), 4))
    x = np.arange(len(rows))
    err = None
    if rows and all(r.get('mAP_lo') is not None for r in rows):
        err = np.array([[r['mAP'] - r['mAP_lo'] for r in rows], [r['mAP_hi'] - r['mAP'] for r in rows]])
    ax.bar(x - 0.2, [r['mAP'] or 0 for r in rows], 0.4, yerr=err, capsize=3, label='mAP')
    ax.bar(x + 0.2, [r[recall_column()] or 0 for r in rows], 0.4, label=f'recall at {HEADLINE_FPPI:g} FPPI')
    ax.set_xticks(x, [r['config'][:28] for r in rows], rotation=15, fontsize=7)
    ax.set(ylim=(0, 1), title='mammo-det leaderboard')
    ax.legend()
    _save(fig, path)
