"""Lesion-level FROC against a hand-computed case, and its bootstrap against the explicitly duplicated study."""
import numpy as np
import pytest

from mammo_det.evaluation import check_protocol, evaluate, point_metrics


def _case():
    """Study s1, left breast: lesion L1 in CC (image 1) and MLO (image 2); study s2: a negative image (3) and a box
    without a lesion_id (image 4). Detections, by score: an FP on image 1 (0.9), the MLO box of L1 (0.8), an FP on
    image 3 (0.7), the CC box of L1 (0.6), the unlinked box (0.5), an FP on image 4 (0.4)."""
    images = [dict(id=1, study_id='s1', laterality='L', view_position='CC'),
              dict(id=2, study_id='s1', laterality='L', view_position='MLO'),
              dict(id=3, study_id='s2', laterality='R', view_position='CC'),
              dict(id=4, study_id='s2', laterality='R', view_position='MLO')]
    for im in images:
        im.update(width=100, height=100, file_name=f"{im['id']}.png")
    anns = [dict(id=1, image_id=1, category_id=1, bbox=[10, 10, 20, 20], area=400, iscrowd=0, lesion_id='L1'),
            dict(id=2, image_id=2, category_id=1, bbox=[40, 40, 20, 20], area=400, iscrowd=0, lesion_id='L1'),
            dict(id=3, image_id=4, category_id=1, bbox=[60, 60, 20, 20], area=400, iscrowd=0)]
    gt = dict(images=images, annotations=anns, categories=[dict(id=1, name='mass')])
    dets = [dict(image_id=1, category_id=1, bbox=[70, 70, 10, 10], score=0.9),
            dict(image_id=2, category_id=1, bbox=[40, 40, 20, 20], score=0.8),
            dict(image_id=3, category_id=1, bbox=[5, 5, 10, 10], score=0.7),
            dict(image_id=1, category_id=1, bbox=[10, 10, 20, 20], score=0.6),
            dict(image_id=4, category_id=1, bbox=[60, 60, 20, 20], score=0.5),
            dict(image_id=4, category_id=1, bbox=[5, 5, 10, 10], score=0.4)]
    return gt, dets


def test_lesion_recall_by_hand():
    gt, dets = _case()
    m = evaluate(gt, dets)
    # per view: 3 boxes; FP counts 1 (0.25 FPPI), 2 (0.5), 3 (0.75) of 4 images
    # after 0.9 FP: 0 found; 0.8 hits L1-MLO: 1/3 at 0.25 FPPI; 0.7 FP: 0.5 FPPI; 0.6: 2/3; 0.5: 3/3; 0.4 FP: 0.75
    assert m['per_category']['mass']['recall_at_fppi'] == {'0.125': 0.0, '0.25': pytest.approx(1 / 3),
                                                           '0.5': 1.0, '1': 1.0, '2': 1.0, '4': 1.0}
    # lesions: L1 and the unlinked box = 2; L1 found at 0.8 (FPPI 0.25), its CC hit at 0.6 adds nothing,
    # the unlinked box at 0.5 (FPPI 0.5)
    lesion = m['lesion_level']['mass']
    assert lesion['num_lesions'] == 2
    assert lesion['recall_at_fppi'] == {'0.125': 0.0, '0.25': 0.5, '0.5': 1.0, '1': 1.0, '2': 1.0, '4': 1.0}
    gt_plain = dict(gt, annotations=[{k: v for k, v in a.items() if k != 'lesion_id'} for a in gt['annotations']])
    assert evaluate(gt_plain, dets)['lesion_level'] is None  # no linked lesions: no lesion level


def test_lesion_bootstrap_equals_the_duplicated_study():
    gt, dets = _case()
    protocol = check_protocol()
    _, data = point_metrics(gt, dets, protocol, for_bootstrap=True)
    weights = np.array([[2.0, 1.0]])  # study s1 twice, s2 once (units sorted: s1, s2)
    got = data.samples(weights)
    dup = dict(gt, images=gt['images'] + [dict(im, id=im['id'] + 10, study_id='s1b') for im in gt['images'][:2]],
               annotations=gt['annotations'] + [dict(a, id=a['id'] + 10, image_id=a['image_id'] + 10)
                                                for a in gt['annotations'][:2]])
    dup_dets = dets + [dict(d, image_id=d['image_id'] + 10) for d in dets if d['image_id'] in (1, 2)]
    ref = evaluate(dup, dup_dets)['lesion_level']['mass']['recall_at_fppi']
    for f, r in ref.items():
        assert got[('lesion_level', 'mass', 'recall_at_fppi', f)][0] == pytest.approx(r), f
    ci = evaluate(gt, dets, bootstrap=50)['ci']
    assert set(ci['lesion_level']['mass']['recall_at_fppi']) == set(ref)
