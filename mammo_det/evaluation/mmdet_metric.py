"""The registered MMDetection metric: the numbers of ``docs/metrics.md`` inside val/test loops."""
from __future__ import annotations

import json
from typing import Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.fileio import get_local_path
from mmengine.logging import MMLogger
from mmdet.registry import METRICS

from mammo_det.fileio import write_json

from .evaluate import evaluate
from .inputs import validate_detections
from .keys import HEADLINE_FPPI, ap_key, fppi_key
from .protocol import check_protocol, subgroups
from .report import format_table, write_outputs


def results_to_coco(results: Sequence[dict], cat_ids: Sequence[int]) -> list:
    """Collected predictions (xyxy, labels 0..K-1) -> COCO results (xywh, category ids, BI-RADS if any)."""
    dets = []
    for r in results:
        for k in range(len(r['scores'])):
            x1, y1, x2, y2 = (float(v) for v in r['bboxes'][k])
            if x2 <= x1 or y2 <= y1:
                continue  # a box clipped to nothing at the image border
            d = dict(image_id=int(r['img_id']), category_id=int(cat_ids[int(r['labels'][k])]),
                     bbox=[x1, y1, x2 - x1, y2 - y1], score=float(r['scores'][k]))
            if 'birads_scores' in r:
                d['birads_scores'] = [float(v) for v in r['birads_scores'][k]]
                d['birads'] = int(r['birads'][k])
            dets.append(d)
    return dets


@METRICS.register_module()
class MammoMetric(BaseMetric):
    """Per-finding COCO AP (equal to pycocotools), recall at FPPI, BI-RADS and breast-level metrics.

    Unlike mmdet's ``CocoMetric(classwise=True)``: maxDets 100 for the per-class numbers, no COCO size ranges,
    FROC points and BI-RADS. Returns ``mammo/mAP``, ``mammo/mAP50``, ``mammo/<category>_AP``,
    ``mammo/<category>_R@0.5FPPI`` ... for checkpoint selection (``save_best='mammo/mAP'``).

    Args:
        ann_file: the COCO ground truth of the evaluated split.
        froc_iou: IoU for FROC and BI-RADS matching.
        results_file: when set, the COCO results (with ``birads`` and ``birads_scores``) are written there.
        report_dir: when set, metrics.json, per_category.csv and the plots are written there.
        iou_thrs, hit, images, by, bootstrap, ci, seed: the protocol and bootstrap options of
            ``mammo-det evaluate`` (:func:`mammo_det.evaluation.evaluate`); bootstrap is off by default, so that
            validation during training stays one evaluation.
    """

    default_prefix = 'mammo'

    def __init__(self, ann_file: str, froc_iou: float = 0.5, results_file: Optional[str] = None,
                 report_dir: Optional[str] = None, iou_thrs: Sequence[float] = (), hit: str = 'iou',
                 images: str = 'all', by: Sequence[str] = (), bootstrap: int = 0, ci: float = 0.95, seed: int = 0,
                 collect_device: str = 'cpu', prefix: Optional[str] = None, backend_args: Optional[dict] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ann_file = ann_file
        self.froc_iou = froc_iou
        check_protocol(froc_iou, hit, images, iou_thrs)  # a wrong option fails when the runner is built
        self.options = dict(iou_thrs=list(iou_thrs), hit=hit, images=images, by=list(by), bootstrap=bootstrap, ci=ci,
                            seed=seed)
        self.results_file = results_file
        self.report_dir = report_dir
        with get_local_path(ann_file, backend_args=backend_args) as path, open(path) as fh:
            self.gt = json.load(fh)
        for key in by:  # a subgroup the ground truth cannot give fails now, not after the whole test loop
            subgroups(self.gt, key)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            pred = ds['pred_instances']
            r = dict(img_id=ds['img_id'], bboxes=pred['bboxes'].cpu().numpy(), scores=pred['scores'].cpu().numpy(),
                     labels=pred['labels'].cpu().numpy())
            if 'birads_scores' in pred:
                r['birads_scores'] = pred['birads_scores'].cpu().numpy()
                r['birads'] = pred['birads'].cpu().numpy()
            self.results.append(r)

    def compute_metrics(self, results: list) -> dict:
        logger = MMLogger.get_current_instance()
        classes = list(self.dataset_meta['classes']) if self.dataset_meta else None
        cats = sorted(self.gt['categories'], key=lambda c: c['id'])
        by_name = {c['name']: c['id'] for c in cats}
        missing = [c for c in classes or [] if c not in by_name]
        if missing:
            raise ValueError(f'{self.ann_file}: the model classes {missing} are not among its categories')
        cat_ids = [by_name[c] for c in classes] if classes else [c['id'] for c in cats]
        evaluated = {r['img_id'] for r in results}
        # Only the model's classes, and only the evaluated images (a test loop may be cut short).
        gt = dict(self.gt, categories=[c for c in cats if c['id'] in cat_ids],
                  images=[im for im in self.gt['images'] if im['id'] in evaluated],
                  annotations=[a for a in self.gt['annotations']
                               if a['image_id'] in evaluated and a['category_id'] in cat_ids])
        dets = validate_detections(results_to_coco(results, cat_ids), gt, 'predictions')
        metrics = evaluate(gt, dets, froc_iou=self.froc_iou, curves=self.report_dir is not None, **self.options)
        logger.info('\n' + format_table(metrics))
        if self.results_file:
            write_json(self.results_file, dets)
        if self.report_dir:
            write_outputs(metrics, self.report_dir)
        out = {k: metrics[k] for k in ('mAP', 'mAP50', 'mAP75')}
        for name, v in metrics['per_category'].items():
            if v['AP'] is None:
                continue
            key = name.replace(' ', '_')
            out[f'{key}_AP'] = v['AP']
            out[f'{key}_AP50'] = v['AP50']
            out.update({f'{key}_{ap_key(t)}': v[ap_key(t)] for t in self.options['iou_thrs']})
            out[f'{key}_R@{HEADLINE_FPPI:g}FPPI'] = v['recall_at_fppi'][fppi_key(HEADLINE_FPPI)]
        if metrics['birads'] and metrics['birads']['accuracy'] is not None:
            out['birads_acc'] = metrics['birads']['accuracy']
            out['birads_majority'] = metrics['birads']['majority_baseline']
        if metrics['breast'] and metrics['breast']['auc_birads_ge4'] is not None:
            out['breast_auc_ge4'] = metrics['breast']['auc_birads_ge4']
        return {k: float(np.round(v, 6)) for k, v in out.items()}
