"""PR curves, FROC curves and the BI-RADS confusion matrix as PNGs (matplotlib, no display needed)."""
from __future__ import annotations

import os

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    tmp = f'{path[:-4]}.tmp{os.getpid()}.png'
    fig.savefig(tmp, dpi=120, bbox_inches='tight')
    os.replace(tmp, path)


def plot_pr(metrics: dict, path: str) -> None:
    """Precision-recall at IoU 0.5 (pycocotools' 101-point interpolation), one curve per category with boxes."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, c in metrics['_curves'].items():
        if metrics['per_category'][name]['num_gt'] == 0:
            continue
        prec = np.clip(c['pr_precision'], 0, None)
        ax.plot(c['pr_recall'], prec, label=f"{name} (AP50 {metrics['per_category'][name]['AP50']:.3f})")
    ax.set(xlabel='recall', ylabel='precision', xlim=(0, 1), ylim=(0, 1.02), title='Precision-recall, IoU 0.5')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='lower left')
    _save(fig, path)
    plt.close(fig)


def plot_froc(metrics: dict, path: str) -> None:
    """Recall against false positives per image on a log axis, one curve per category."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, c in metrics['_curves'].items():
        if metrics['per_category'][name]['num_gt'] == 0 or len(c['froc_fppi']) == 0:
            continue
        fppi = np.maximum(c['froc_fppi'], 1e-3)
        ax.step(fppi, c['froc_recall'], where='post',
                label=f"{name} (R@0.5 {metrics['per_category'][name]['recall_at_fppi']['0.5']:.3f})")
    ax.set_xscale('log')
    ax.set(xlabel='false positives per image', ylabel='recall', ylim=(0, 1.02), xlim=(1e-2, 8),
           title=f"FROC, IoU {metrics['froc_iou']}")
    for f in (0.125, 0.25, 0.5, 1, 2, 4):
        ax.axvline(f, color='grey', lw=0.5, ls=':')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='upper left')
    _save(fig, path)
    plt.close(fig)


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
