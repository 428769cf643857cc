"""MammoMetric (the metric inside MMEngine's test and validation loops) with the protocol and bootstrap options:
the same numbers as `mammo-det evaluate` with the same options."""
import json

import numpy as np
import pytest

from .cases import study_case


def test_mammo_metric_options_equal_evaluate(tmp_path):
    torch = pytest.importorskip('torch')
    import mammo_det.registry  # noqa: F401
    from mammo_det.evaluation import EvaluationInputError, evaluate
    from mammo_det.evaluation.mmdet_metric import MammoMetric

    gt, dets = study_case(21, studies=20)
    for d in dets:  # the float32 scores and boxes a model hands the metric
        d['score'] = float(np.float32(d['score']))
        d['bbox'] = [float(np.float32(v)) for v in d['bbox']]
    ann = tmp_path / 'gt.json'
    ann.write_text(json.dumps(gt))
    with pytest.raises(EvaluationInputError, match="unknown subgroup key 'scanner'"):
        MammoMetric(str(ann), by=['scanner'])  # refused when the runner is built, not after the test loop
    opts = dict(iou_thrs=[0.1], hit='center', images='positive', by=['vendor'], bootstrap=100, seed=4)
    metric = MammoMetric(str(ann), report_dir=str(tmp_path / 'eval'), **opts)
    metric.dataset_meta = dict(classes=[c['name'] for c in gt['categories']])
    for im in gt['images']:
        mine = [d for d in dets if d['image_id'] == im['id']]
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (d['bbox'] for d in mine)], np.float32).reshape(-1, 4)
        pred = dict(bboxes=torch.as_tensor(boxes), scores=torch.tensor([d['score'] for d in mine], dtype=torch.float32),
                    labels=torch.tensor([d['category_id'] - 1 for d in mine], dtype=torch.long))
        metric.process({}, [dict(img_id=im['id'], pred_instances=pred)])
    out = metric.compute_metrics(metric.results)
    ref = evaluate(gt, [{k: v for k, v in d.items() if k != 'birads_scores'} for d in dets], **opts)
    for name, v in ref['per_category'].items():
        if v['AP'] is not None:
            assert out[f'{name}_AP10'] == pytest.approx(v['AP10'], abs=1e-6)
            assert out[f'{name}_AP'] == pytest.approx(v['AP'], abs=1e-6)
    written = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
    assert written['protocol'] == ref['protocol'] and written['ci']['mAP'] == pytest.approx(ref['ci']['mAP'])
    assert set(written['subgroups']['vendor']) == set(ref['subgroups']['vendor'])
