"""The main job end to end at a reduced size: demo (train + test + report), inference on raw DICOMs, benchmark."""
import json
import os
import re

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """The demo pipeline as `make demo` runs it (~4.5 minutes on 2 cores): smaller runs do not learn enough for
    the learnability check below."""
    from mammo_det.apis.demo import run_demo

    out = str(tmp_path_factory.mktemp('demo'))
    metrics = run_demo(out)
    return out, metrics


@pytest.mark.slow
def test_demo_report_matches_metrics_and_learns(demo):
    out, metrics = demo
    for f in ('report.md', 'model.pth', 'config.py', 'preds.json', 'eval/metrics.json', 'eval/froc.png',
              'eval/pr_curves.png', 'eval/per_category.csv'):
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    assert json.load(open(os.path.join(out, 'eval', 'metrics.json'))) == metrics
    report = open(os.path.join(out, 'report.md')).read()
    assert f"mAP {metrics['mAP']:.3f}, mAP50 {metrics['mAP50']:.3f}" in report
    for name, v in metrics['per_category'].items():
        row = next(line for line in report.splitlines() if line.startswith(f'| {name} |'))
        cells = [c.strip() for c in row.strip('|').split('|')]
        assert cells[1] == str(v['num_gt'])
        assert cells[2] == ('-' if v['AP'] is None else f"{v['AP']:.3f}")
        assert cells[7] == f"{v['recall_at_fppi']['0.5']:.3f}"  # R@0.5FPPI column
    examples = re.findall(r'\]\((examples/[^)]+\.png)\)', report)
    assert examples and all(os.path.exists(os.path.join(out, e)) for e in examples)
    # Learnability: the synthetic masses are found (a random-init model scores about 0 here), and the BI-RADS
    # head beats always answering the most frequent BI-RADS of the matched boxes.
    assert metrics['per_category']['Mass']['AP50'] > 0.3, metrics['per_category']['Mass']
    assert metrics['birads']['accuracy'] > metrics['birads']['majority_baseline'], metrics['birads']


@pytest.mark.slow
def test_infer_maps_boxes_back_to_the_dicom_grid(demo, tmp_path):
    """Each vendor profile: DICOM in -> boxes in DICOM pixels; equal to the converted PNG's boxes mapped back."""
    from data_converters.synth import plan_dataset, render_dicom
    from mammo_det.apis.inference import infer
    from mammo_det.io.geometry import to_original
    from mammo_det.io.preprocess import preprocess
    from data_converters.vindr_mammo import write_png

    out, _ = demo
    plans = [im for im in plan_dataset(100, seed=11, scale=0.15, positive_rate=0.9)
             if any(f.categories == ['Mass'] for f in im.findings)]
    by_profile = {}
    for im in plans:
        by_profile.setdefault(im.profile, im)
    assert set(by_profile) == {'siemens', 'planmed', 'ims'}
    raw, pngs, transforms = tmp_path / 'raw', tmp_path / 'png', {}
    for name, im in by_profile.items():
        render_dicom(im, str(raw / f'{name}.dicom'))
        img, t, _ = preprocess(str(raw / f'{name}.dicom'), max_size=320)
        write_png(str(pngs / f'{name}.png'), img)
        transforms[name] = t
    res = infer(os.path.join(out, 'config.py'), os.path.join(out, 'model.pth'), [str(raw), str(pngs)],
                str(tmp_path / 'out'), score_thr=0.0, progress=False)
    preds = {(os.path.basename(os.path.dirname(p['file'])), p['source_id']): p for p in res['predictions']}
    landed = 0
    for name, im in by_profile.items():
        d, p = preds[('raw', name)], preds[('png', name)]
        assert (d['width'], d['height']) == (im.cols, im.rows)  # the DICOM grid: Columns x Rows
        assert len(d['detections']) == len(p['detections']) > 0
        mapped = to_original(np.array([x['bbox'] for x in p['detections']]), transforms[name])
        np.testing.assert_allclose(np.array([x['bbox'] for x in d['detections']]), mapped, atol=0.02)
        assert all(len(x['birads_scores']) == 3 and x['birads'] in (3, 4, 5) for x in d['detections'])
        assert d['overlay'] != p['overlay']  # same stem in two folders: two overlays
        assert os.path.exists(tmp_path / 'out' / d['overlay']) and os.path.exists(tmp_path / 'out' / p['overlay'])
        mass = [f.box for f in im.findings if f.categories == ['Mass']]
        best = max(_iou(np.array(x['bbox']), np.array(m)) for x in d['detections'][:5] for m in mass)
        landed += best >= 0.3
    assert landed >= 2, 'top boxes should land on the planted masses in original coordinates'


@pytest.mark.slow
def test_infer_workers_keep_order_and_list_unreadable_files(demo, tmp_path):
    """Worker processes decode: the same predictions as in-process decoding, in input order, bad files listed."""
    from data_converters.synth import plan_dataset, render_dicom
    from mammo_det.apis.inference import infer

    out, _ = demo
    inputs = tmp_path / 'in'
    for k, im in enumerate(plan_dataset(3, seed=5, scale=0.15)[:5]):
        render_dicom(im, str(inputs / f'{k}.dicom'))
    (inputs / '2b.dicom').write_bytes(b'\x00' * 300)  # unreadable, between readable ones
    runs = {w: infer(os.path.join(out, 'config.py'), os.path.join(out, 'model.pth'), [str(inputs)],
                     str(tmp_path / f'o{w}'), progress=False, workers=w, batch_size=2) for w in (0, 2)}
    for res in runs.values():
        assert [os.path.basename(p['file']) for p in res['predictions']] == [f'{k}.dicom' for k in range(5)]
        assert [os.path.basename(e['file']) for e in res['errors']] == ['2b.dicom']
    assert runs[0]['predictions'] == runs[2]['predictions']
    assert json.load(open(tmp_path / 'o2' / 'predictions.json')) == runs[2]['predictions']
    assert json.load(open(tmp_path / 'o2' / 'errors.json'))[0]['file'].endswith('2b.dicom')
    only_bad = infer(os.path.join(out, 'config.py'), os.path.join(out, 'model.pth'), [str(inputs / '2b.dicom')],
                     str(tmp_path / 'bad'), progress=False)
    assert only_bad['predictions'] == [] and json.load(open(tmp_path / 'bad' / 'predictions.json')) == []


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.slow
def test_benchmark_two_configs_two_rows(demo, tmp_path):
    from mammo_det.apis.benchmark import benchmark

    out, _ = demo
    variant = tmp_path / 'faster-rcnn_r18-w16_fpn_1xb4-1e_synth-mammo.py'
    variant.write_text(f"_base_ = {os.path.join(out, 'config.py')!r}\n"
                       "model = dict(roi_head=dict(bbox_head=dict(fc_out_channels=128)))\n")
    rows = benchmark([os.path.join(out, 'config.py'), str(variant)], os.path.join(out, 'coco'), str(tmp_path / 'b'),
                     cfg_options={'train_cfg.max_epochs': 1, 'param_scheduler.1.T_max': 1,
                                  'param_scheduler.1.end': 1, 'default_hooks.checkpoint.interval': 1})
    assert [r['config'] for r in rows] == ['config', variant.stem]
    for r in rows:
        metrics = json.load(open(tmp_path / 'b' / r['config'] / 'eval' / 'metrics.json'))
        assert r['mAP'] == metrics['mAP'] and r['AP Mass'] == metrics['per_category']['Mass']['AP']
        assert r['params_M'] > 0 and r['GFLOPs'] > 0 and r['test_img_per_s'] > 0 and r['train_s'] > 0
    assert rows[0]['params_M'] > rows[1]['params_M']  # the narrower RoI head
    md = open(tmp_path / 'b' / 'leaderboard.md').read().splitlines()
    assert len(md) == 4 and os.path.getsize(tmp_path / 'b' / 'leaderboard.png') > 0
    assert len(open(tmp_path / 'b' / 'leaderboard.csv').read().splitlines()) == 3
