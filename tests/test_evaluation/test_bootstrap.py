"""Study bootstrap: a resample is the evaluation of the data with each study repeated as often as it is drawn."""
import json

import numpy as np
import pytest

from mammo_det.evaluation import evaluate
from mammo_det.evaluation.bootstrap import resampling_units, study_weights
from mammo_det.evaluation import check_protocol, compare, point_metrics

from .cases import duplicate, pycocotools_ap, study_case

FPPI = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)


def _flat(m: dict) -> dict:
    out = {('mAP',): m['mAP'], ('mAP50',): m['mAP50'], ('mAP10',): m['mAP10'],
           ('breast', 'auc_birads_ge4'): m['breast']['auc_birads_ge4'],
           ('breast', 'auc_birads_ge3'): m['breast']['auc_birads_ge3'],
           ('birads', 'accuracy'): m['birads']['accuracy'],
           ('birads', 'suspicious_AP'): m['birads']['suspicious_AP'],
           ('birads', 'suspicious_AP50'): m['birads']['suspicious_AP50']}
    for n, v in m['per_category'].items():
        for k in ('AP', 'AP50', 'AP75', 'AP10'):
            out[('per_category', n, k)] = v[k]
        for f, r in v['recall_at_fppi'].items():
            out[('per_category', n, 'recall_at_fppi', f)] = r
    return out


@pytest.mark.parametrize('seed,hit', [(0, 'iou'), (1, 'center')])
def test_a_resample_equals_pycocotools_on_the_duplicated_studies(seed, hit):
    """Weights drawn per study; the same data with each study written out that many times (its four views,
    boxes and detections together), evaluated from scratch and by pycocotools, gives the resample's numbers."""
    gt, dets = study_case(seed, studies=25)
    protocol = check_protocol(0.3, hit, 'all', [0.1])
    _, data = point_metrics(gt, dets, protocol, fppi_points=FPPI, for_bootstrap=True)
    copies = np.random.default_rng(seed).integers(0, 4, len(data.units))
    ones = np.ones(len(data.units))
    samples = data.samples(np.vstack([ones, copies]).astype(float))
    point = _flat(evaluate(gt, dets, froc_iou=0.3, hit=hit, iou_thrs=[0.1]))
    dup_gt, dup_dets = duplicate(gt, dets, copies)
    resampled = _flat(evaluate(dup_gt, dup_dets, froc_iou=0.3, hit=hit, iou_thrs=[0.1]))
    for path, v in point.items():
        assert samples[path][0] == pytest.approx(v, abs=1e-12), path  # weights 1: the point value
    for path, v in resampled.items():
        if path[-1] in ('AP', 'AP50', 'AP75', 'AP10', 'suspicious_AP', 'suspicious_AP50') and v is None:
            assert np.isnan(samples[path][1]), path  # no box of that category drawn
            continue
        assert samples[path][1] == pytest.approx(v, abs=1e-12), path
    ref = pycocotools_ap(dup_gt, dup_dets)
    for name, ap in ref.items():
        if ap is not None:
            assert samples[('per_category', name, 'AP')][1] == pytest.approx(ap, abs=1e-9)


def test_the_study_is_the_unit():
    gt, _ = study_case(3, studies=10)
    unit, units = resampling_units(gt['images'])
    assert len(units) == 10
    by_study = {}
    for im, u in zip(gt['images'], unit):
        assert by_study.setdefault(im['study_id'], u) == u  # the four views share one unit
    assert len(set(by_study.values())) == 10
    w = study_weights(len(units), 500, seed=1)
    assert w.shape == (500, 10) and (w.sum(axis=1) == 10).all() and (w == 0).any()
    # without study ids each image is its own unit
    unit2, units2 = resampling_units([dict(im, study_id=None) for im in gt['images']])
    assert len(units2) == len(gt['images']) and len(set(unit2.tolist())) == len(gt['images'])


def test_intervals_reproducible_contain_the_point_and_shrink_with_twice_the_studies():
    gt, dets = study_case(4, studies=60)
    a = evaluate(gt, dets, bootstrap=400, seed=7)
    b = evaluate(gt, dets, bootstrap=400, seed=7)
    c = evaluate(gt, dets, bootstrap=400, seed=8)
    assert a['ci'] == b['ci'] and a['ci'] != c['ci']
    assert a['ci']['n'] == 400 and a['ci']['unit'] == 'study' and a['ci']['level'] == 0.95
    lo, hi = a['ci']['mAP']
    assert lo < a['mAP'] < hi
    for name, v in a['per_category'].items():
        lo, hi = a['ci']['per_category'][name]['AP50']
        assert lo <= v['AP50'] <= hi
        assert set(a['ci']['per_category'][name]['recall_at_fppi']) == set(v['recall_at_fppi'])
    assert set(a['ci']['breast']) == {'auc_birads_ge4', 'auc_birads_ge3'} and a['ci']['birads']['accuracy']
    # Every study twice: intervals about 1/sqrt(2) as wide.
    d_gt, d_dets = duplicate(gt, dets, np.full(60, 2))
    d = evaluate(d_gt, d_dets, bootstrap=1000, seed=7)
    a = evaluate(gt, dets, bootstrap=1000, seed=7)
    width = lambda m, *p: np.diff(_get(m['ci'], p))[0]  # noqa: E731
    ratios = [width(d, 'mAP') / width(a, 'mAP'), width(d, 'mAP50') / width(a, 'mAP50'),
              width(d, 'breast', 'auc_birads_ge4') / width(a, 'breast', 'auc_birads_ge4')]
    assert all(0.55 < r < 0.87 for r in ratios), ratios
    assert np.mean(ratios) == pytest.approx(2 ** -0.5, abs=0.08)


def _get(d, path):
    for k in path:
        d = d[k]
    return d


def test_a_model_against_itself_and_against_a_clearly_worse_one():
    gt, dets = study_case(5, studies=60)
    rng = np.random.default_rng(0)
    worse = [dict(d, score=float(rng.random())) for d in dets]  # scores unrelated to the boxes
    r = compare(gt, [dets, dets, worse], ['A', 'A2', 'worse'], bootstrap=500, seed=3)
    assert r['reference'] == 'A' and set(r['differences']) == {'A2', 'worse'}
    same = r['differences']['A2']
    for e in [same['mAP'], same['mAP50']] + [c[k] for c in same['per_category'].values() for k in ('AP', 'AP50')]:
        assert e == dict(delta=0.0, ci=[0.0, 0.0], p=1.0)
    for c in same['per_category'].values():
        assert all(e == dict(delta=0.0, ci=[0.0, 0.0], p=1.0) for e in c['recall_at_fppi'].values())
    w = r['differences']['worse']['mAP']
    assert w['delta'] < 0 and w['ci'][1] < 0 and w['p'] < 0.01
    # the models' own intervals are the same as evaluating each alone with the same seed
    alone = evaluate(gt, worse, bootstrap=500, seed=3)
    assert r['models']['worse']['ci']['mAP'] == alone['ci']['mAP']


def test_compare_cli_writes_json_markdown_and_forest_plot(tmp_path):
    import subprocess
    import sys

    gt, dets = study_case(6, studies=15)
    (tmp_path / 'gt.json').write_text(json.dumps(gt))
    (tmp_path / 'a.json').write_text(json.dumps(dets))
    (tmp_path / 'b.json').write_text(json.dumps([dict(d, score=d['score'] ** 2) for d in dets[::2]]))
    cmd = [sys.executable, '-m', 'mammo_det', 'compare', str(tmp_path / 'gt.json'), str(tmp_path / 'a.json'),
           str(tmp_path / 'b.json'), '--names', 'base', 'half', '--out', str(tmp_path / 'cmp'), '--bootstrap', '200',
           '--iou-thrs', '0.1', '--images', 'positive']
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads((tmp_path / 'cmp' / 'comparison.json').read_text())
    assert r['reference'] == 'base' and r['protocol']['images'] == 'positive' and r['protocol']['iou_thrs'] == [0.1]
    d = r['differences']['half']
    assert {'delta', 'ci', 'p'} <= set(d['mAP']) and 'AP10' in d['per_category']['c1']
    assert d['mAP']['delta'] == pytest.approx(r['models']['half']['mAP'] - r['models']['base']['mAP'])
    md = (tmp_path / 'cmp' / 'comparison.md').read_text()
    lo, hi = r['models']['base']['ci']['mAP']
    assert f"{r['models']['base']['mAP']:.3f} [{lo:.3f}, {hi:.3f}]" in md
    assert (tmp_path / 'cmp' / 'comparison.png').stat().st_size > 5000


@pytest.mark.parametrize('studies,groups,items', [(5, 4, 200), (300, 50, 120)])  # dense table, then gathered
def test_grouped_weight_sums_both_ways_equal_a_loop(studies, groups, items):
    from mammo_det.evaluation.bootstrap import sum_by_group

    rng = np.random.default_rng(studies)
    w = study_weights(studies, 7, seed=1)
    unit, group = rng.integers(0, studies, items), rng.integers(0, groups, items)
    expected = np.zeros((7, groups))
    for u, g in zip(unit, group):
        expected[:, g] += w[:, u]
    np.testing.assert_array_equal(sum_by_group(w, unit, group, groups), expected)
