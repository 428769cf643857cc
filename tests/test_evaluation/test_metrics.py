import json

import numpy as np
import pytest

from mammo_det.evaluation import EvaluationInputError, evaluate, validate_detections
from mammo_det.evaluation.coco import ap_from_precision, coco_precision


def _gt(images, anns, cats=('Mass', 'Suspicious Calcification')):
    ims = [dict(id=i, width=100, height=100, file_name=f'{i}.png', **extra) for i, extra in images]
    out = []
    for k, a in enumerate(anns, 1):
        out.append(dict(id=k, iscrowd=0, area=a['bbox'][2] * a['bbox'][3], **a))
    return dict(images=ims, annotations=out, categories=[dict(id=i, name=n) for i, n in enumerate(cats, 1)])


def _det(img, cat, box, score, **kw):
    return dict(image_id=img, category_id=cat, bbox=list(box), score=score, **kw)


def test_perfect_predictions_give_one():
    gt = _gt([(1, {}), (2, {})], [dict(image_id=1, category_id=1, bbox=[10, 10, 20, 20]),
                                  dict(image_id=2, category_id=2, bbox=[50, 50, 10, 30])])
    dets = [_det(a['image_id'], a['category_id'], a['bbox'], 0.9) for a in gt['annotations']]
    m = evaluate(gt, dets)
    assert m['mAP'] == 1.0 and m['mAP50'] == 1.0 and m['mAP75'] == 1.0
    for v in m['per_category'].values():
        assert v['AP'] == 1.0 and all(r == 1.0 for r in v['recall_at_fppi'].values())


def test_duplicate_and_negative_image_hand_computed():
    # Image 1 holds two masses; image 2 is negative. Detections by score: hit g1, duplicate of g1, hit g2.
    gt = _gt([(1, {}), (2, {})], [dict(image_id=1, category_id=1, bbox=[10, 10, 20, 20]),
                                  dict(image_id=1, category_id=1, bbox=[60, 60, 20, 20])])
    dets = [_det(1, 1, [10, 10, 20, 20], 0.9), _det(1, 1, [11, 11, 20, 20], 0.8), _det(1, 1, [60, 60, 20, 20], 0.7)]
    m = evaluate(gt, dets)
    mass = m['per_category']['Mass']
    # precision 1, 1/2, 2/3 at recall .5, .5, 1 -> interpolated 1 for r <= .5 (51 points), 2/3 above (50 points)
    expected = (51 * 1.0 + 50 * 2 / 3) / 101
    assert mass['AP50'] == pytest.approx(expected, abs=1e-12)
    # FPPI: the duplicate is one FP over 2 images -> 0.5; recall 0.5 before it, 1.0 at FPPI 0.5
    assert mass['recall_at_fppi'] == {'0.125': 0.5, '0.25': 0.5, '0.5': 1.0, '1': 1.0, '2': 1.0, '4': 1.0}
    assert m['per_category']['Suspicious Calcification']['AP'] is None  # no ground truth: not in the mean
    assert m['mAP50'] == pytest.approx(expected)


def test_negative_only_images_count_in_fppi():
    gt = _gt([(i, {}) for i in range(1, 5)], [dict(image_id=1, category_id=1, bbox=[10, 10, 20, 20])])
    # Two false positives on negative images, scored above the hit.
    dets = [_det(3, 1, [5, 5, 10, 10], 0.95), _det(4, 1, [5, 5, 10, 10], 0.9), _det(1, 1, [10, 10, 20, 20], 0.5)]
    r = evaluate(gt, dets)['per_category']['Mass']['recall_at_fppi']
    assert r['0.25'] == 0.0 and r['0.5'] == 1.0  # 2 FP / 4 images = 0.5 FPPI before the hit
    r2 = evaluate(dict(gt, images=gt['images'][:3]), dets[:1] + dets[2:])['per_category']['Mass']['recall_at_fppi']
    assert r2['0.25'] == 0.0 and r2['0.5'] == 1.0  # 1 FP / 3 images = 0.33


def _random_case(rng, n_img=40, n_cat=3):
    images = [(i, {}) for i in range(1, n_img + 1)]
    anns = []
    for i in range(1, n_img + 1):
        for _ in range(int(rng.integers(0, 4))):
            x, y = rng.uniform(0, 80, 2)
            anns.append(dict(image_id=i, category_id=int(rng.integers(1, n_cat + 1)),
                             bbox=[float(x), float(y), float(rng.uniform(4, 30)), float(rng.uniform(4, 30))]))
    gt = _gt(images, anns, cats=[f'c{k}' for k in range(n_cat)])
    dets = []
    for a in anns:  # jittered true positives and duplicates
        for _ in range(int(rng.integers(0, 3))):
            b = np.array(a['bbox']) + rng.normal(0, 3, 4)
            b[2:] = np.maximum(b[2:], 1)
            dets.append(_det(a['image_id'], a['category_id'], b.tolist(), float(rng.random())))
    for _ in range(n_img * 3):  # false positives everywhere
        dets.append(_det(int(rng.integers(1, n_img + 1)), int(rng.integers(1, n_cat + 1)),
                         [*rng.uniform(0, 90, 2).tolist(), *rng.uniform(2, 25, 2).tolist()],
                         float(np.round(rng.random(), 2))))  # rounded: score ties, a matching trap
    return gt, dets


@pytest.mark.parametrize('seed', range(5))
def test_equal_to_pycocotools_on_random_inputs(seed):
    gt, dets = _random_case(np.random.default_rng(seed))
    fast = evaluate(gt, dets)
    ref = evaluate(gt, dets, backend='pycocotools')
    for name, v in fast['per_category'].items():
        for key in ('AP', 'AP50', 'AP75'):
            assert v[key] == pytest.approx(ref['per_category'][name][key], abs=1e-6)
    # and against pycocotools' own summarize() for the mean
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        c = COCO()
        c.dataset = json.loads(json.dumps(gt))
        c.createIndex()
        e = COCOeval(c, c.loadRes(dets), 'bbox')
        e.evaluate()
        e.accumulate()
        e.summarize()
    assert fast['mAP'] == pytest.approx(e.stats[0], abs=1e-6)
    assert fast['mAP50'] == pytest.approx(e.stats[1], abs=1e-6)
    assert fast['mAP75'] == pytest.approx(e.stats[2], abs=1e-6)


def _strip_curves(m):
    return {k: v for k, v in m.items() if k != '_curves'}


@pytest.mark.parametrize('seed', range(4))
def test_numpy_backend_equals_faster_coco_eval_bit_for_bit(seed):
    """The default backend accumulates this package's own matching; every number of the result (AP at the COCO
    and extra thresholds, PR curves, the BI-RADS 4-5 AP) is faster-coco-eval's to the last bit, on cases with tied
    scores, duplicates, a crowd box and perfect hits (precision exactly 1)."""
    from tests.test_evaluation.cases import study_case
    gt, dets = study_case(seed, studies=25)
    for d in dets[::3]:
        d['score'] = round(d['score'], 1)
    gt['annotations'][0]['iscrowd'] = 1
    a = gt['annotations'][1]
    dets.append(dict(image_id=a['image_id'], category_id=a['category_id'], bbox=list(a['bbox']), score=1.0,
                     birads_scores=[0.0, 0.5, 0.5]))
    ours = evaluate(gt, dets, iou_thrs=(0.1, 0.3), curves=True)
    ref = evaluate(gt, json.loads(json.dumps(dets)), iou_thrs=(0.1, 0.3), curves=True, backend='faster')
    assert _strip_curves(ours) == _strip_curves(ref)
    for name, c in ours['_curves'].items():
        np.testing.assert_array_equal(c['pr_precision'], ref['_curves'][name]['pr_precision'])
    assert ours['birads']['suspicious_AP'] > 0
    pyc = evaluate(gt, json.loads(json.dumps(dets)), iou_thrs=(0.1, 0.3), backend='pycocotools')
    for name, v in ours['per_category'].items():
        for key in ('AP', 'AP50', 'AP75', 'AP10', 'AP30'):
            assert v[key] == pytest.approx(pyc['per_category'][name][key], abs=1e-12)
    assert ours['birads']['suspicious_AP'] == pytest.approx(pyc['birads']['suspicious_AP'], abs=1e-12)


@pytest.mark.parametrize('quirk', ['annotation id 0', 'repeated annotation id', 'box area beyond "all"',
                                   'detection area beyond "all"', 'box of an unknown image'])
def test_pycocotools_bookkeeping_quirks_keep_its_numbers(quirk):
    """Where pycocotools' bookkeeping departs from plain matching, the default backend hands the AP to
    faster-coco-eval: the numbers are its numbers, quirks included."""
    from mammo_det.evaluation.coco import choose_backend, detection_columns
    gt = _gt([(1, {}), (2, {})], [dict(image_id=1, category_id=1, bbox=[10, 10, 20, 20]),
                                  dict(image_id=2, category_id=1, bbox=[50, 50, 20, 20])])
    dets = [_det(1, 1, [10, 10, 20, 20], 0.9), _det(2, 1, [50, 50, 20, 20], 0.8), _det(2, 1, [0, 0, 9, 9], 0.7)]
    anns = gt['annotations']
    if quirk == 'annotation id 0':
        anns[0]['id'] = 0  # pycocotools records a match to it as "no match": a false positive
    elif quirk == 'repeated annotation id':
        anns[1]['id'] = anns[0]['id']
    elif quirk == 'box area beyond "all"':
        anns[0]['area'] = 2e10  # ignored
    elif quirk == 'detection area beyond "all"':
        dets.append(_det(1, 1, [0, 0, 2e5, 2e5], 0.95))  # unmatched and outside the range: ignored
    else:
        anns.append(dict(id=3, image_id=9, category_id=1, bbox=[0, 0, 5, 5], area=25, iscrowd=0))
    assert choose_backend('numpy', gt, detection_columns(gt, dets)) == 'faster'
    ours = evaluate(gt, dets)
    assert ours == evaluate(gt, json.loads(json.dumps(dets)), backend='faster')
    if quirk == 'annotation id 0':
        assert ours['per_category']['Mass']['AP50'] < 1.0  # what plain matching (AP50 1.0) would not give
    plain = _gt([(1, {}), (2, {})], [dict(image_id=1, category_id=1, bbox=[10, 10, 20, 20])])
    assert choose_backend('numpy', plain, detection_columns(plain, dets[:3])) == 'numpy'


@pytest.mark.parametrize('seed', range(3))
def test_froc_matching_agrees_with_pycocotools_evalimgs(seed):
    """Our TP/FP flags at IoU 0.5 are pycocotools' dtMatches for area 'all', maxDets 100."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    import contextlib
    import io
    from mammo_det.evaluation.coco import match_all
    gt, dets = _random_case(np.random.default_rng(100 + seed))
    with contextlib.redirect_stdout(io.StringIO()):
        c = COCO()
        c.dataset = json.loads(json.dumps(gt))
        c.createIndex()
        e = COCOeval(c, c.loadRes(dets), 'bbox')
        e.params.areaRng, e.params.areaRngLbl, e.params.maxDets = [[0, 1e10]], ['all'], [100]
        e.evaluate()
    for cat in gt['categories']:
        ev = [x for x in e.evalImgs if x is not None and x['category_id'] == cat['id']]
        scores = np.concatenate([x['dtScores'] for x in ev])
        tp = np.concatenate([x['dtMatches'][0] for x in ev]) > 0
        o = np.argsort(-scores, kind='mergesort')
        ours = match_all(gt, dets, 0.5)[cat['id']]
        np.testing.assert_array_equal(ours['tp'], tp[o])
        np.testing.assert_allclose(ours['scores'], scores[o])


def test_no_detections_gives_zeros():
    gt = _gt([(1, {})], [dict(image_id=1, category_id=1, bbox=[10, 10, 20, 20])])
    m = evaluate(gt, [])
    assert m['mAP'] == 0.0 and m['per_category']['Mass']['AP'] == 0.0
    assert m['per_category']['Mass']['recall_at_fppi']['4'] == 0.0


def test_birads_confusion_accuracy_and_suspicious_ap():
    gt = _gt([(1, {}), (2, {})], [dict(image_id=1, category_id=1, bbox=[10, 10, 20, 20], birads=4),
                                  dict(image_id=1, category_id=1, bbox=[60, 60, 20, 20], birads=3),
                                  dict(image_id=2, category_id=1, bbox=[10, 10, 30, 30], birads=None)])
    dets = [_det(1, 1, [10, 10, 20, 20], 0.9, birads_scores=[0.1, 0.8, 0.1]),   # true 4, pred 4
            _det(1, 1, [60, 60, 20, 20], 0.8, birads_scores=[0.2, 0.1, 0.7]),   # true 3, pred 5
            _det(2, 1, [10, 10, 30, 30], 0.7, birads_scores=[0.6, 0.2, 0.2])]   # no BI-RADS: not counted
    b = evaluate(gt, dets)['birads']
    assert b['matched'] == 2 and b['accuracy'] == 0.5 and b['majority_baseline'] == 0.5
    assert b['confusion'] == [[0, 0, 1], [0, 1, 0], [0, 0, 0]]
    # suspicious group: one BI-RADS 4 box; det scores 0.9*0.9, 0.8*0.8, 0.7*0.4 -> the hit ranks first
    assert b['suspicious_num_gt'] == 1 and b['suspicious_AP50'] == 1.0


def test_breast_level_auc_hand_computed():
    imgs = [(1, dict(study_id='s1', laterality='L', breast_birads=4)),
            (2, dict(study_id='s1', laterality='L', breast_birads=4)),
            (3, dict(study_id='s1', laterality='R', breast_birads=1)),
            (4, dict(study_id='s2', laterality='L', breast_birads=3)),
            (5, dict(study_id='s2', laterality='R', breast_birads=2))]
    gt = _gt(imgs, [])
    dets = [_det(2, 1, [1, 1, 5, 5], 0.9), _det(3, 1, [1, 1, 5, 5], 0.3),
            _det(4, 1, [1, 1, 5, 5], 0.5), _det(5, 1, [1, 1, 5, 5], 0.6)]
    br = evaluate(gt, dets)['breast']
    assert br['num_breasts'] == 4
    assert br['auc_birads_ge4'] == 1.0  # the one >=4 breast (0.9, from its MLO) beats all three others
    # >=3: positives 0.9, 0.5; negatives 0.3, 0.6 -> pairs won: (0.9>0.3, 0.9>0.6, 0.5>0.3) = 3 of 4
    assert br['auc_birads_ge3'] == 0.75


@pytest.mark.parametrize('mutate,message', [
    (lambda d: d.update(image_id=99), 'unknown image_id 99'),
    (lambda d: d.update(category_id=7), 'unknown category_id 7'),
    (lambda d: d.update(score=float('nan')), 'score nan'),
    (lambda d: d.update(score=-0.1), 'score -0.1'),
    (lambda d: d.update(bbox=[1, 1, 0, 5]), 'width and height must be > 0'),
    (lambda d: d.update(bbox=[1, 1, 5]), 'must be 4 finite numbers'),
    (lambda d: d.pop('score'), "has no 'score'"),
    (lambda d: d.update(birads_scores=[0.5, 0.5]), 'birads_scores'),
])
def test_bad_detections_name_the_entry(mutate, message):
    gt = _gt([(1, {})], [dict(image_id=1, category_id=1, bbox=[10, 10, 20, 20])])
    dets = [_det(1, 1, [10, 10, 20, 20], 0.9), _det(1, 1, [10, 10, 20, 20], 0.5)]
    mutate(dets[1])
    with pytest.raises(EvaluationInputError, match=f'detection 1 .*{message}'.replace('[', r'\[')):
        validate_detections(dets, gt, 'preds.json')


def test_evaluate_cli_writes_files_and_rejects_bad_json(tmp_path, capsys):
    from mammo_det.cli import main
    gt = _gt([(1, dict(study_id='s', laterality='L', breast_birads=4))],
             [dict(image_id=1, category_id=1, bbox=[10, 10, 20, 20], birads=4)])
    (tmp_path / 'gt.json').write_text(json.dumps(gt))
    (tmp_path / 'pred.json').write_text(json.dumps([_det(1, 1, [10, 10, 20, 20], 0.9,
                                                         birads_scores=[0.1, 0.8, 0.1])]))
    assert main(['evaluate', str(tmp_path / 'gt.json'), str(tmp_path / 'pred.json'), '--out',
                 str(tmp_path / 'ev')]) == 0
    m = json.loads((tmp_path / 'ev' / 'metrics.json').read_text())
    assert m['mAP'] == 1.0 and m['per_category']['Mass']['recall_at_fppi']['0.125'] == 1.0
    assert m['froc_iou'] == 0.5 and m['birads']['accuracy'] == 1.0
    for f in ('per_category.csv', 'pr_curves.png', 'froc.png', 'birads_confusion.png'):
        assert (tmp_path / 'ev' / f).stat().st_size > 0
    assert 'Mass' in capsys.readouterr().out
    (tmp_path / 'bad.json').write_text('[{"image_id": 1,')
    assert main(['evaluate', str(tmp_path / 'gt.json'), str(tmp_path / 'bad.json'), '--out', str(tmp_path)]) == 2
    assert 'bad.json: detections is not valid JSON' in capsys.readouterr().err


def test_custom_froc_iou_changes_only_froc():
    gt = _gt([(1, {})], [dict(image_id=1, category_id=1, bbox=[0, 0, 20, 20])])
    dets = [_det(1, 1, [0, 0, 20, 11], 0.9)]  # IoU 0.55
    a, b = evaluate(gt, dets, froc_iou=0.5), evaluate(gt, dets, froc_iou=0.6)
    assert a['per_category']['Mass']['recall_at_fppi']['1'] == 1.0
    assert b['per_category']['Mass']['recall_at_fppi']['1'] == 0.0
    assert a['mAP'] == b['mAP'] and b['froc_iou'] == 0.6
    prec, _ = coco_precision(gt, dets)
    assert ap_from_precision(prec[0, :, 0]) == 1.0


def test_froc_plot_keeps_only_the_corners_of_the_step_curve():
    from mammo_det.evaluation.plots import step_corners
    rng = np.random.default_rng(0)
    tp = rng.random(2000) < 0.05
    recall, fppi = np.cumsum(tp) / tp.sum(), np.cumsum(~tp) / 200
    keep = step_corners(recall)
    assert len(keep) <= 2 * tp.sum() + 2 and keep[0] == 0 and keep[-1] == len(recall) - 1

    def post_step(xs, ys, at):  # what ax.step(where='post') draws at each x
        return ys[np.searchsorted(xs, at, side='right') - 1]

    at = np.r_[fppi, np.linspace(fppi[0], fppi[-1], 5000)]
    np.testing.assert_array_equal(post_step(fppi[keep], recall[keep], at), post_step(fppi, recall, at))
    assert list(step_corners(np.array([0.0, 0.5]))) == [0, 1]


@pytest.mark.parametrize('backend', ['numpy', 'faster', 'pycocotools'])
def test_evaluation_leaves_the_callers_dicts_untouched(backend):
    gt, dets = _random_case(np.random.default_rng(3), n_img=10)
    for d in dets:
        d['birads_scores'] = [0.2, 0.3, 0.5]
    gt['annotations'][0]['birads'] = 4
    gt_before, dets_before = json.loads(json.dumps(gt)), json.loads(json.dumps(dets))
    evaluate(gt, dets, backend=backend, bootstrap=5)
    assert gt == gt_before and dets == dets_before
