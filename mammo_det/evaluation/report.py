"""Writing an evaluation to disk: metrics.json, per_category.csv, subgroups.csv and the plots; and a paired
comparison: comparison.json, comparison.md and its forest plot."""
from __future__ import annotations

import os

from mammo_det.fileio import write_csv, write_json, write_text

from .metrics import HEADLINE_FPPI, _ap_keys, fppi_key, per_category_rows, subgroup_rows, with_interval
from .plots import plot_birads_confusion, plot_forest, plot_froc, plot_pr


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
    if metrics.get('subgroups'):
        paths['subgroups'] = os.path.join(out_dir, 'subgroups.csv')
        write_csv(paths['subgroups'], subgroup_rows(metrics))
    return paths


def comparison_rows(result: dict) -> list:
    """Per compared model (not the reference) and metric: delta, interval and p."""
    rows = []
    head = fppi_key(HEADLINE_FPPI)
    keys = _ap_keys(result['models'][result['reference']])
    for name, d in result['differences'].items():
        for k in keys:
            rows.append(dict(model=name, category='mean', metric='m' + k, **_flat(d['m' + k])))
        for cat, c in d['per_category'].items():
            if not result['models'][result['reference']]['per_category'][cat]['num_gt']:
                continue
            for k in keys:
                rows.append(dict(model=name, category=cat, metric=k, **_flat(c[k])))
            rows.append(dict(model=name, category=cat, metric=f'R@{head}FPPI', **_flat(c['recall_at_fppi'][head])))
    return rows


def _flat(e: dict) -> dict:
    ci = e.get('ci')
    return dict(delta=e['delta'], lo=ci[0] if ci else None, hi=ci[1] if ci else None, p=e.get('p'))


def comparison_markdown(result: dict) -> str:
    from mammo_det.tables import fmt, format_rows

    ref = result['reference']
    boot = result['bootstrap']
    head = fppi_key(HEADLINE_FPPI)
    keys = _ap_keys(result['models'][ref])
    lines = [f'# Paired comparison (reference: {ref})', '',
             f"{boot['n']} study resamples (seed {boot['seed']}), {boot['level']:.0%} percentile intervals; the "
             'same resamples for every model. Protocol: '
             + ', '.join(f'{k} {v}' for k, v in result['protocol'].items()),
             '']
    rows = []
    for name, m in result['models'].items():
        ci = m.get('ci') or {}
        row = dict(model=name)
        row.update({'m' + k: with_interval(m['m' + k], ci.get('m' + k)) for k in keys})
        for cat, v in m['per_category'].items():
            if v['num_gt']:
                c = ci.get('per_category', {}).get(cat, {})
                row[f'{cat} AP'] = with_interval(v['AP'], c.get('AP'))
                row[f'{cat} R@{head}'] = with_interval(v['recall_at_fppi'][head], c.get('recall_at_fppi', {}).get(head))
        rows.append(row)
    lines += ['## Models', '', format_rows(rows), '', f'## Differences (model minus {ref})', '']
    diff = [dict(model=r['model'], category=r['category'], metric=r['metric'],
                 delta=with_interval(r['delta'], (r['lo'], r['hi']) if r['lo'] is not None else None),
                 p=fmt(r['p'])) for r in comparison_rows(result)]
    lines.append(format_rows(diff))
    return '\n'.join(lines) + '\n'


def write_comparison(result: dict, out_dir: str) -> dict:
    """comparison.json, comparison.md and comparison.png (forest plot of the differences) in ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, f'comparison.{k}') for k in ('json', 'md', 'png')}
    write_json(paths['json'], result, indent=2)
    write_text(paths['md'], comparison_markdown(result))
    plot_forest(comparison_rows(result), result['reference'], paths['png'])
    return paths
