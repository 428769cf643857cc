"""Protocol knobs, subgroups, operating points and recall by BI-RADS, against pycocotools or by hand."""
import json
import subprocess
import sys

import numpy as np
import pytest

from mammo_det.evaluation import EvaluationInputError, evaluate

from .cases import pycocotools_ap, study_case


@pytest.mark.parametrize('thrs', [[0.1], [0.1, 0.2, 0.25]])
def test_ap_at_extra_iou_thresholds_equals_pycocotools_at_that_threshold(thrs):
    gt, dets = study_case(10)
    m = evaluate(gt, dets, iou_thrs=thrs)
    plain = evaluate(gt, dets)
    for t in thrs:
        key = f'AP{round(t * 100)}'
        ref = pycocotools_ap(gt, dets, iou_thrs=[t])
        for name, v in m['per_category'].items():
            assert v[key] == pytest.approx(ref[name], abs=1e-9), (key, name)
        assert m['m' + key] == pytest.approx(np.mean([v for v in ref.values() if v is not None]), abs=1e-9)
    assert m['per_category']['c1']['AP10'] > m['per_category']['c1']['AP50']  # looser threshold, more hits
    for k in ('mAP', 'mAP50', 'mAP75', 'per_category'):  # the standard keys are untouched
        if k != 'per_category':
            assert m[k] == plain[k]
    assert m['protocol'] == dict(images='all', froc_iou=0.5, hit='iou', iou_thrs=thrs)


def test_positive_images_protocol_equals_pycocotools_on_the_filtered_set():
    gt, dets = study_case(11)
    pos = {a['image_id'] for a in gt['annotations']}
    f_gt = dict(gt, images=[im for im in gt['images'] if im['id'] in pos])
    f_dets = [d for d in dets if d['image_id'] in pos]
    assert 0 < len(f_gt['images']) < len(gt['images'])
    m = evaluate(gt, dets, images='positive')
    assert m['num_images'] == len(pos) and m['num_detections'] == len(f_dets)
    ref = pycocotools_ap(f_gt, f_dets)
    for name, v in m['per_category'].items():
        assert v['AP'] == pytest.approx(ref[name], abs=1e-9)
    # FPPI over the positive images: recall at each point from the matches, counted here by hand
    from mammo_det.evaluation.coco import match_all
    mt = match_all(f_gt, f_dets, 0.5)[1]
    fppi, rec = np.cumsum(mt['fp']) / len(pos), np.cumsum(mt['tp']) / mt['num_gt']
    for f, r in m['per_category']['c1']['recall_at_fppi'].items():
        assert r == rec[fppi <= float(f)].max(initial=0.0)
    assert m['per_category']['c1']['recall_at_fppi'] != evaluate(gt, dets)['per_category']['c1']['recall_at_fppi']


def test_every_subgroup_equals_pycocotools_on_its_images():
    gt, dets = study_case(12, studies=40)
    m = evaluate(gt, dets, by=['density', 'view', 'laterality', 'vendor'], bootstrap=50)
    fields = dict(density='breast_density', view='view_position', laterality='laterality', vendor='manufacturer')
    assert set(m['subgroups']) == set(fields)
    assert set(m['subgroups']['view']) == {'CC', 'MLO'} and set(m['subgroups']['laterality']) == {'L', 'R'}
    for key, field in fields.items():
        groups = m['subgroups'][key]
        assert sum(g['num_images'] for g in groups.values()) == len(gt['images'])
        for value, g in groups.items():
            ids = {im['id'] for im in gt['images'] if str(im[field]) == value}
            s_gt = dict(gt, images=[im for im in gt['images'] if im['id'] in ids],
                        annotations=[a for a in gt['annotations'] if a['image_id'] in ids])
            s_dets = [d for d in dets if d['image_id'] in ids]
            assert g['num_images'] == len(ids)
            ref = pycocotools_ap(s_gt, s_dets)
            for name, v in g['per_category'].items():
                assert (v['AP'] is None and ref[name] is None) or v['AP'] == pytest.approx(ref[name], abs=1e-9)
            alone = evaluate(s_gt, s_dets)
            assert g['mAP'] == alone['mAP'] and g['per_category']['c1']['recall_at_fppi'] == \
                alone['per_category']['c1']['recall_at_fppi']
            assert 'ci' in g and 'mAP' in g['ci']


def _gt(anns, n_images=1, cats=('mass', 'calc')):
    images = [dict(id=i, file_name=f'{i}.png', width=300, height=300) for i in range(1, n_images + 1)]
    return dict(images=images, categories=[dict(id=k, name=n) for k, n in enumerate(cats, 1)],
                annotations=[dict(id=k, iscrowd=0, area=a['bbox'][2] * a['bbox'][3], **a)
                             for k, a in enumerate(anns, 1)])


def test_center_hits_hand_built():
    gt = _gt([dict(image_id=1, category_id=1, bbox=[0, 0, 100, 100]),
              dict(image_id=1, category_id=1, bbox=[200, 200, 50, 50])])
    dets = [dict(image_id=1, category_id=1, bbox=[30, 30, 60, 60], score=0.9),   # centre (60, 60) in box 1; IoU .36
            dict(image_id=1, category_id=1, bbox=[10, 10, 20, 20], score=0.8),   # centre in box 1, already found
            dict(image_id=1, category_id=2, bbox=[210, 210, 30, 30], score=0.75),  # other category: not a hit
            dict(image_id=1, category_id=1, bbox=[150, 150, 80, 80], score=0.7),  # centre (190, 190): outside
            dict(image_id=1, category_id=1, bbox=[240, 240, 20, 20], score=0.6)]  # centre (250, 250): on the edge
    centre = evaluate(gt, dets, hit='center')['per_category']['mass']['recall_at_fppi']
    # FP count before each hit: 0 then 2 -> recall 0.5 from FPPI 0, 1.0 from FPPI 2
    assert centre == {'0.125': 0.5, '0.25': 0.5, '0.5': 0.5, '1': 0.5, '2': 1.0, '4': 1.0}
    iou = evaluate(gt, dets, hit='iou', froc_iou=0.5)['per_category']['mass']['recall_at_fppi']
    assert iou['4'] == 0.0  # no detection reaches IoU 0.5
    # Two unmatched boxes contain the centre: the one overlapping most is taken; the next detection takes the other
    gt2 = _gt([dict(image_id=1, category_id=1, bbox=[0, 0, 200, 200]),
               dict(image_id=1, category_id=1, bbox=[40, 40, 30, 30])])
    dets2 = [dict(image_id=1, category_id=1, bbox=[45, 45, 20, 20], score=0.9),
             dict(image_id=1, category_id=1, bbox=[50, 50, 10, 10], score=0.8)]
    from mammo_det.evaluation.coco import match_all
    m = match_all(gt2, dets2, 0.5, hit='center')[1]
    assert m['gt_index'].tolist() == [1, 0] and m['tp'].all()


def test_operating_points_reproduce_recall_at_fppi_and_keep_the_right_boxes():
    gt, dets = study_case(13, studies=40)
    m = evaluate(gt, dets)
    n = m['num_images']
    for name, ops in m['operating_points'].items():
        cid = int(name[1:])
        for f, op in ops.items():
            assert op['recall'] == m['per_category'][name]['recall_at_fppi'][f]  # scores have no ties here
            assert op['fppi'] <= float(f)
            if op['threshold'] is None:
                assert op['recall'] == 0.0
                continue
            # keep exactly the boxes at or above the threshold: their evaluation gives the same recall and FPPI
            kept = [d for d in dets if d['category_id'] == cid and d['score'] >= op['threshold']]
            again = evaluate(gt, kept)
            assert again['per_category'][name]['recall_at_fppi']['4'] == op['recall']
            from mammo_det.evaluation.coco import match_all
            mt = match_all(gt, kept, 0.5)[cid]
            assert mt['fp'].sum() / n == pytest.approx(op['fppi'])
            # the next lower score would add a false positive beyond f, or no recall
            lower = [d['score'] for d in dets if d['category_id'] == cid and d['score'] < op['threshold']]
            if lower:
                more = kept + [d for d in dets if d['category_id'] == cid and d['score'] == max(lower)]
                mt2 = match_all(gt, more, 0.5)[cid]
                assert mt2['fp'].sum() / n > float(f) or mt2['tp'].sum() == mt['tp'].sum()


def test_operating_point_never_splits_tied_scores():
    gt = _gt([dict(image_id=1, category_id=1, bbox=[0, 0, 50, 50])], n_images=2)
    dets = [dict(image_id=2, category_id=1, bbox=[0, 0, 50, 50], score=0.8),   # FP tied with the hit
            dict(image_id=1, category_id=1, bbox=[0, 0, 50, 50], score=0.8)]
    m = evaluate(gt, dets)
    # pycocotools' order puts image 1's hit first: recall 1 at FPPI 0; a threshold keeps both (FPPI 0.5)
    assert m['per_category']['mass']['recall_at_fppi']['0.25'] == 1.0
    assert m['operating_points']['mass']['0.25'] == dict(threshold=None, recall=0.0, fppi=0.0)
    assert m['operating_points']['mass']['0.5'] == dict(threshold=0.8, recall=1.0, fppi=0.5)


def test_recall_by_birads_hand_computed():
    gt = _gt([dict(image_id=1, category_id=1, bbox=[0, 0, 50, 50], birads=3),
              dict(image_id=1, category_id=1, bbox=[100, 100, 50, 50], birads=4),
              dict(image_id=2, category_id=1, bbox=[0, 0, 50, 50], birads=4),
              dict(image_id=2, category_id=1, bbox=[200, 200, 50, 50], birads=None)], n_images=4)
    dets = [dict(image_id=1, category_id=1, bbox=[100, 100, 50, 50], score=0.9),  # BI-RADS 4 found
            dict(image_id=3, category_id=1, bbox=[0, 0, 30, 30], score=0.8),      # FP: FPPI 0.25
            dict(image_id=1, category_id=1, bbox=[0, 0, 50, 50], score=0.7),      # BI-RADS 3 found
            dict(image_id=4, category_id=1, bbox=[0, 0, 30, 30], score=0.6),      # FP: FPPI 0.5
            dict(image_id=2, category_id=1, bbox=[0, 0, 50, 50], score=0.5)]      # second BI-RADS 4
    r = evaluate(gt, dets)['recall_by_birads']['mass']
    assert r['0.125'] == {'3': 0.0, '4': 0.5, '5': None}
    assert r['0.25'] == {'3': 1.0, '4': 0.5, '5': None}
    assert r['0.5'] == {'3': 1.0, '4': 1.0, '5': None}


def test_bad_options_and_subgroups_are_named():
    gt, dets = study_case(14, studies=4)
    with pytest.raises(EvaluationInputError, match="unknown subgroup key 'scanner'"):
        evaluate(gt, dets, by=['scanner'])
    for im in gt['images'][:3]:
        del im['manufacturer']
    with pytest.raises(EvaluationInputError, match="'manufacturer': 3 of 16 images lack it"):
        evaluate(gt, dets, by=['vendor'])
    with pytest.raises(EvaluationInputError, match='--iou-thrs 0.5'):
        evaluate(gt, dets, iou_thrs=[0.5])
    with pytest.raises(EvaluationInputError, match='--hit'):
        evaluate(gt, dets, hit='overlap')


@pytest.mark.parametrize('args,message', [(['--by', 'density,scanner'], "unknown subgroup key 'scanner'"),
                                          (['--by', 'vendor'], "needs the image field 'manufacturer'")])
def test_evaluate_cli_rejects_subgroups_without_traceback(tmp_path, args, message):
    gt, dets = study_case(15, studies=4)
    for im in gt['images']:
        im.pop('manufacturer')
    (tmp_path / 'gt.json').write_text(json.dumps(gt))
    (tmp_path / 'p.json').write_text(json.dumps(dets))
    p = subprocess.run([sys.executable, '-m', 'mammo_det', 'evaluate', str(tmp_path / 'gt.json'),
                        str(tmp_path / 'p.json'), '--out', str(tmp_path / 'ev')] + args,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and message in p.stderr and 'Traceback' not in p.stderr


def test_evaluate_cli_with_every_knob_writes_intervals(tmp_path):
    gt, dets = study_case(16, studies=12)
    (tmp_path / 'gt.json').write_text(json.dumps(gt))
    (tmp_path / 'p.json').write_text(json.dumps(dets))
    p = subprocess.run([sys.executable, '-m', 'mammo_det', 'evaluate', str(tmp_path / 'gt.json'),
                        str(tmp_path / 'p.json'), '--out', str(tmp_path / 'ev'), '--iou-thrs', '0.1,0.2',
                        '--hit', 'center', '--images', 'positive', '--by', 'density,vendor', '--bootstrap', '100',
                        '--seed', '3'], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / 'ev' / 'metrics.json').read_text())
    assert m['protocol'] == dict(images='positive', froc_iou=0.5, hit='center', iou_thrs=[0.1, 0.2])
    assert m['ci']['seed'] == 3 and len(m['ci']['per_category']['c1']['AP20']) == 2
    lo, hi = m['ci']['mAP']
    assert f"{m['mAP']:.4f} [{lo:.4f}, {hi:.4f}]" in p.stdout  # the printed table shows the interval
    csv = (tmp_path / 'ev' / 'per_category.csv').read_text().splitlines()
    assert 'AP_lo' in csv[0] and 'AP20_hi' in csv[0]
    assert (tmp_path / 'ev' / 'subgroups.csv').read_text().count('\n') == 1 + len(m['subgroups']['density']) + \
        len(m['subgroups']['vendor'])
