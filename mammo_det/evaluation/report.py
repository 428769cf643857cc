"""Writing an evaluation to disk: metrics.json, per_category.csv and the plots."""
from __future__ import annotations

import os

from mammo_det.fileio import write_csv, write_json

from .metrics import per_category_rows
from .plots import plot_birads_confusion, plot_froc, plot_pr


def write_outputs(metrics: dict, out_dir: str) -> dict:
    """Writes the files of ``mammo-det evaluate`` into ``out_dir``; returns {kind: path}.

    ``metrics`` must come from ``evaluate(..., curves=True)``; the curves go to the plots, not the JSON.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, n) for k, n in (('metrics', 'metrics.json'), ('csv', 'per_category.csv'),
                                                       ('pr', 'pr_curves.png'), ('froc', 'froc.png'))}
    public = {k: v for k, v in metrics.items() if not k.startswith('_')}
    write_json(paths['metrics'], public, indent=2)
    write_csv(paths['csv'], per_category_rows(metrics))
    plot_pr(metrics, paths['pr'])
    plot_froc(metrics, paths['froc'])
    if metrics.get('birads') and metrics['birads']['matched']:
        paths['birads'] = os.path.join(out_dir, 'birads_confusion.png')
        plot_birads_confusion(metrics['birads'], paths['birads'])
    return paths
