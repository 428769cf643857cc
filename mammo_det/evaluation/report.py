"""Every table and page people read, and the files of an evaluation: the per-category table (text for terminals
and logs, Markdown for reports), the BI-RADS and breast-level summary, subgroups, a paired comparison and a
leaderboard; ``metrics.json``, ``per_category.csv``, ``subgroups.csv``, ``comparison.{json,md,png}``,
``leaderboard.{md,csv,png}`` and the plots."""
from __future__ import annotations

import os
import re
from typing import List, Optional, Sequence

from mammo_det.fileio import write_csv, write_json, write_text

from .keys import HEADLINE_FPPI, fppi_key, metrics_ap_keys, recall_column


# --- cells and tables ------------------------------------------------------------------------------------------

def fmt(value, digits: int = 3) -> str:
    """``-`` for a missing value, floats with ``digits`` decimals, anything else as ``str``."""
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    return str(value)


def with_interval(value, bounds, digits: int = 3) -> str:
    """'0.612 [0.551, 0.668]' (or the value alone without an interval)."""
    if bounds is None:
        return fmt(value, digits)
    return f'{fmt(value, digits)} [{fmt(bounds[0], digits)}, {fmt(bounds[1], digits)}]'


def format_rows(rows: Sequence[dict], cols: Optional[List[str]] = None, digits: int = 3,
                style: str = 'markdown') -> str:
    """Rows of dicts as a table; ``cols`` defaults to every key in first-seen order.

    Args:
        style: ``'markdown'`` (``| a | b |`` with a separator line) or ``'text'`` (fixed-width columns, the first
            left-aligned, for terminals and logs).
    """
    cols = cols or list(dict.fromkeys(k for r in rows for k in r))
    # A key a row lacks is a blank cell; a key whose value is None is '-'.
    cells = [[row[c] if isinstance(row.get(c), str) else fmt(row[c], digits) if c in row else '' for c in cols]
             for row in rows]
    if style == 'markdown':
        lines = ['| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
        return '\n'.join(lines + ['| ' + ' | '.join(r) + ' |' for r in cells])
    if style != 'text':
        raise ValueError(f"style must be 'markdown' or 'text', got {style!r}")
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]

    def line(vals):
        return '  '.join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))

    return '\n'.join([line(cols), line(['-' * w for w in widths])] + [line(r) for r in cells])


# --- one evaluation --------------------------------------------------------------------------------------------

def per_category_rows(metrics: dict, intervals: str = 'columns', digits: int = 3) -> List[dict]:
    """One flat row per category, then the mean row.

    Args:
        intervals: where ``metrics`` has bootstrap intervals: ``'columns'`` adds ``<col>_lo``/``<col>_hi``
            columns (the CSV), ``'text'`` writes cells as "0.612 [0.551, 0.668]" (printed tables).
    """
    ci = metrics.get('ci') or {}
    ci_cat = ci.get('per_category', {})
    keys = metrics_ap_keys(metrics)
    rows = []

    def put(row, col, value, bounds):
        if not ci or intervals not in ('columns', 'text'):
            row[col] = value
        elif intervals == 'text':
            row[col] = with_interval(value, bounds, digits)
        else:
            row[col] = value
            row[f'{col}_lo'], row[f'{col}_hi'] = bounds if bounds else (None, None)

    for name, v in metrics['per_category'].items():
        c = ci_cat.get(name, {})
        row = dict(category=name, num_gt=v['num_gt'])
        for k in keys:
            put(row, k, v[k], c.get(k))
        for f, r in v['recall_at_fppi'].items():
            put(row, f'R@{f}FPPI', r, c.get('recall_at_fppi', {}).get(f))
        rows.append(row)
    mean = dict(category='mean', num_gt=sum(v['num_gt'] for v in metrics['per_category'].values()))
    for k in keys:
        put(mean, k, metrics['m' + k], ci.get('m' + k))
    return rows + [mean]


def summary_lines(metrics: dict, digits: int = 4) -> List[str]:
    """The BI-RADS and breast-level sentences (with intervals where the metrics have them)."""
    ci = metrics.get('ci') or {}
    out = []
    b = metrics.get('birads')
    if b and b.get('accuracy') is not None:
        acc = with_interval(b['accuracy'], ci.get('birads', {}).get('accuracy'), digits)
        out.append(f"BI-RADS on {b['matched']} matched boxes: accuracy {acc} (majority baseline "
                   f"{fmt(b['majority_baseline'], digits)}); suspicious (4-5) AP {fmt(b['suspicious_AP'], digits)}, "
                   f"AP50 {fmt(b['suspicious_AP50'], digits)}")
    br = metrics.get('breast')
    if br:
        bci = ci.get('breast', {})
        out.append(f"breast level ({br['num_breasts']} breasts): AUC BI-RADS>=4 "
                   f"{with_interval(br['auc_birads_ge4'], bci.get('auc_birads_ge4'), digits)}, "
                   f">=3 {with_interval(br['auc_birads_ge3'], bci.get('auc_birads_ge3'), digits)}")
    return out


def protocol_line(metrics: dict) -> Optional[str]:
    p = metrics.get('protocol')
    if not p:
        return None
    return (f"protocol: images {p['images']}, FROC hit {p['hit']}"
            + (f" (IoU >= {p['froc_iou']})" if p['hit'] == 'iou' else '')
            + (f", extra AP at IoU {', '.join(f'{t:g}' for t in p['iou_thrs'])}" if p['iou_thrs'] else ''))


def format_table(metrics: dict) -> str:
    """The per-category table as fixed-width text (what the CLI prints and the MMEngine logger shows), with
    intervals where the metrics have them, then BI-RADS, breast level and subgroups."""
    ci = metrics.get('ci') or {}
    out = []
    if ci:
        out.append(f"{ci['level']:.0%} intervals over {ci['n']} study resamples (seed {ci['seed']})")
    out.append(format_rows(per_category_rows(metrics, intervals='text', digits=4), digits=4, style='text'))
    if metrics.get('lesion_level'):
        out += ['', 'lesion level (a lesion found in either view; false positives per image as above):',
                format_rows(lesion_rows(metrics, intervals='text'), digits=4, style='text')]
    out += summary_lines(metrics)
    if metrics.get('subgroups'):
        out += ['', format_rows(subgroup_rows(metrics, intervals='text'), digits=4, style='text')]
    line = protocol_line(metrics)
    if line:
        out.append(line)
    return '\n'.join(out)


def lesion_rows(metrics: dict, intervals: str = 'columns') -> List[dict]:
    """One row per category with lesions: their number and the lesion-level recall at each FPPI point."""
    ci = (metrics.get('ci') or {}).get('lesion_level', {})
    rows = []
    for name, v in (metrics.get('lesion_level') or {}).items():
        if not v['num_lesions']:
            continue
        row = dict(category=name, num_lesions=v['num_lesions'])
        for f, r in v['recall_at_fppi'].items():
            bounds = ci.get(name, {}).get('recall_at_fppi', {}).get(f)
            if intervals == 'text':
                row[f'R@{f}FPPI'] = with_interval(r, bounds, 4)
            else:
                row[f'R@{f}FPPI'] = r
                if ci:
                    row[f'R@{f}FPPI_lo'], row[f'R@{f}FPPI_hi'] = bounds if bounds else (None, None)
        rows.append(row)
    return rows


def subgroup_rows(metrics: dict, intervals: str = 'columns') -> List[dict]:
    """One row per (subgroup key, value): images, mAP, mAP50 and each category's AP and headline recall."""
    rows = []
    head = fppi_key(HEADLINE_FPPI)
    for key, values in (metrics.get('subgroups') or {}).items():
        for value, m in values.items():
            ci = m.get('ci') or {}
            row = dict(subgroup=key, value=value, num_images=m['num_images'])
            for k in ('mAP', 'mAP50'):
                row[k] = with_interval(m[k], ci.get(k), 4) if intervals == 'text' else m[k]
            for name, v in m['per_category'].items():
                if metrics['per_category'][name]['num_gt']:
                    row[f'{name} AP'] = v['AP']
                    row[f'{name} R@{head}'] = v['recall_at_fppi'][head] if v['num_gt'] else None
            rows.append(row)
    return rows


def write_outputs(metrics: dict, out_dir: str) -> dict:
    """Writes the files of ``mammo-det evaluate`` into ``out_dir``; returns {kind: path}.

    ``metrics`` must come from ``evaluate(..., curves=True)``; the curves go to the plots, not the JSON.
    """
    from .plots import plot_birads_confusion, plot_froc, plot_pr

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
    if lesion_rows(metrics):
        paths['lesions'] = os.path.join(out_dir, 'lesion_level.csv')
        write_csv(paths['lesions'], lesion_rows(metrics))
    return paths


# --- a paired comparison ---------------------------------------------------------------------------------------

def comparison_rows(result: dict) -> list:
    """Per compared model (not the reference) and metric: delta, interval and p."""
    rows = []
    head = fppi_key(HEADLINE_FPPI)
    keys = metrics_ap_keys(result['models'][result['reference']])
    for name, d in result['differences'].items():
        for k in keys:
            rows.append(dict(model=name, category='mean', metric='m' + k, **_flat(d['m' + k])))
        for cat, c in d['per_category'].items():
            if not result['models'][result['reference']]['per_category'][cat]['num_gt']:
                continue
            for k in keys:
                rows.append(dict(model=name, category=cat, metric=k, **_flat(c[k])))
            rows.append(dict(model=name, category=cat, metric=recall_column(), **_flat(c['recall_at_fppi'][head])))
        for cat, c in (d.get('lesion_level') or {}).items():
            if result['models'][result['reference']]['lesion_level'][cat]['num_lesions']:
                for f, e in c['recall_at_fppi'].items():
                    rows.append(dict(model=name, category=cat, metric=f'lesion {recall_column(float(f))}', **_flat(e)))
    return rows


def _flat(e: dict) -> dict:
    ci = e.get('ci')
    return dict(delta=e['delta'], lo=ci[0] if ci else None, hi=ci[1] if ci else None, p=e.get('p'))


def comparison_markdown(result: dict) -> str:
    ref = result['reference']
    boot = result['bootstrap']
    head = fppi_key(HEADLINE_FPPI)
    keys = metrics_ap_keys(result['models'][ref])
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
    from .plots import plot_forest

    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, f'comparison.{k}') for k in ('json', 'md', 'png')}
    write_json(paths['json'], result, indent=2)
    write_text(paths['md'], comparison_markdown(result))
    plot_forest(comparison_rows(result), result['reference'], paths['png'])
    return paths


# --- a leaderboard ---------------------------------------------------------------------------------------------

def leaderboard_markdown(rows: List[dict], missing: Sequence[str] = ()) -> str:
    """Configs ranked by mAP, intervals as "0.612 [0.551, 0.668]", the paired mAP difference to the first config."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    ranked = sorted(rows, key=lambda r: -(r['mAP'] or 0))
    ref = rows[0]['config'] if rows else None
    shown = [c for c in cols if not re.search(r'_(lo|hi|p)$', c) and c not in ('dmAP', 'bootstrap')]
    md_rows = []
    for r in ranked:
        m = {c: with_interval(r.get(c), (r[f'{c}_lo'], r[f'{c}_hi'])) if r.get(f'{c}_lo') is not None else r.get(c)
             for c in shown}
        if 'dmAP' in cols:
            bounds = (r['dmAP_lo'], r['dmAP_hi']) if r.get('dmAP_lo') is not None else None
            m[f'ΔmAP vs {ref}'] = ('reference' if r['config'] == ref else
                                   f"{with_interval(r.get('dmAP'), bounds)} (p {fmt(r.get('dmAP_p'))})")
        md_rows.append(m)
    lines = [format_rows(md_rows)]
    if rows and rows[0].get('bootstrap'):
        lines += ['', f"Intervals: {rows[0]['bootstrap']} (paired: the same resamples for every config)."]
    if missing:
        lines += ['', 'Not finished: ' + ', '.join(missing)]
    return '\n'.join(lines) + '\n'


def write_leaderboard(rows: List[dict], out_dir: str, missing: Sequence[str] = ()) -> dict:
    """leaderboard.md, leaderboard.csv (numbers, ``_lo``/``_hi`` columns) and leaderboard.png (mAP with its
    interval and the headline recall per config)."""
    from .plots import plot_leaderboard

    paths = {k: os.path.join(out_dir, f'leaderboard.{k}') for k in ('md', 'csv', 'png')}
    write_text(paths['md'], leaderboard_markdown(rows, missing))
    write_csv(paths['csv'], rows, list(dict.fromkeys(k for r in rows for k in r)))
    plot_leaderboard(rows, paths['png'])
    return paths
