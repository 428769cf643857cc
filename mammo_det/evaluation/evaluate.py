"""Every number of ``mammo-det evaluate`` and of the MMDetection metric for one set of detections, and the paired
comparison of several (definitions: ``docs/metrics.md``).

Input: a COCO ground-truth dict (as the converter writes it: ``birads`` per annotation, ``study_id`` and
``laterality`` and ``breast_birads`` per image) and COCO-style detections (``image_id``, ``category_id``,
``bbox`` xywh, ``score``, optionally ``birads_scores`` [p3, p4, p5]). The metric families live in their modules
(:mod:`coco`, :mod:`froc`, :mod:`birads`, :mod:`breast`, :mod:`bootstrap`); this one runs them under a protocol.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from .birads import birads_metrics
from .bootstrap import BootstrapData, ci_block, difference, study_weights
from .breast import breast_metrics
from .coco import (Detections, ap_from_precision, choose_backend, detection_columns, drop_ignored, match_sorted,
                   precision_by_category, reference_precision)
from .froc import operating_points, recall_at_fppi, recall_by_birads
from .inputs import EvaluationInputError, validate_gt
from .keys import COCO_IOU_THRS, FPPI_POINTS, IOU50, IOU75, ap_key, ap_keys
from .lesion import lesion_keys, lesion_level
from .protocol import check_protocol, restrict, select_images, subgroups


def _category_aps(precision: np.ndarray, num_gt: int, extra: Sequence[float]) -> dict:
    """AP, AP50, AP75 and the extra single-threshold APs of one category from its precision rows (the COCO
    thresholds, then ``extra``): None without ground truth."""
    if num_gt == 0:
        return dict.fromkeys(ap_keys(extra))
    n_coco = len(COCO_IOU_THRS)
    aps = dict(AP=ap_from_precision(precision[:n_coco]), AP50=ap_from_precision(precision[IOU50]),
               AP75=ap_from_precision(precision[IOU75]))
    aps.update({ap_key(t): ap_from_precision(precision[n_coco + i]) for i, t in enumerate(extra)})
    return aps


def _match(gt: dict, dets: Detections, protocol: dict) -> tuple:
    """(matches at the AP thresholds, matches under the FROC protocol). With IoU hits one matching pass serves
    both; centre hits need their own."""
    ap_thrs = list(COCO_IOU_THRS) + list(protocol['iou_thrs'])
    if protocol['hit'] == 'iou':
        rows = match_sorted(gt, dets, ap_thrs + [protocol['froc_iou']])
        coco = {c: dict(m, tp=m['tp'][:-1], fp=m['fp'][:-1], gt_index=m['gt_index'][:-1]) for c, m in rows.items()}
        froc = {c: dict(m, tp=m['tp'][-1:], fp=m['fp'][-1:], gt_index=m['gt_index'][-1:]) for c, m in rows.items()}
        return coco, froc
    return match_sorted(gt, dets, ap_thrs), match_sorted(gt, dets, [protocol['froc_iou']], protocol['hit'])


def point_metrics(gt: dict, dets: List[dict], protocol: dict, backend: str = 'numpy',
                  fppi_points: Sequence[float] = FPPI_POINTS, curves: bool = False,
                  for_bootstrap: bool = False) -> tuple:
    """(the metrics of the full set, the :class:`BootstrapData` of its resamples or None).

    Args:
        protocol: from :func:`check_protocol`.
        backend: COCO AP backend, one of :data:`coco.BACKENDS` (identical numbers).
        curves: also return the PR and FROC curves under ``'_curves'`` (for plots; not JSON-worthy).
        for_bootstrap: also prepare what the study resamples need.
    """
    cats = sorted(gt['categories'], key=lambda c: c['id'])
    extra = protocol['iou_thrs']
    columns = detection_columns(gt, dets)
    backend = choose_backend(backend, gt, columns)
    coco_sorted, froc_sorted = _match(gt, columns, protocol)
    ap_thrs = list(COCO_IOU_THRS) + list(extra)
    if backend == 'numpy' or not dets:
        precision = precision_by_category(coco_sorted, len(ap_thrs))
    else:
        precision = reference_precision(gt, dets, ap_thrs, backend)
    matches = drop_ignored(froc_sorted)
    n_img = len(gt['images'])
    per_cat, ops, by_birads, curve_data = {}, {}, {}, {}
    for c in cats:
        m = matches[c['id']]
        rec, fppi, at = recall_at_fppi(m['tp'], m['fp'], m['num_gt'], n_img, fppi_points)
        per_cat[c['name']] = dict(_category_aps(precision[c['id']], m['num_gt'], extra), num_gt=m['num_gt'],
                                  recall_at_fppi=at)
        ops[c['name']] = operating_points(m, n_img, fppi_points)
        by_birads[c['name']] = recall_by_birads(m, gt['annotations'], c['id'], n_img, fppi_points)
        if curves:
            curve_data[c['name']] = dict(froc_recall=rec, froc_fppi=fppi, pr_precision=precision[c['id']][IOU50],
                                         pr_recall=np.linspace(0, 1, 101))

    def mean(key: str) -> float:
        vals = [v[key] for v in per_cat.values() if v[key] is not None]
        return float(np.mean(vals)) if vals else 0.0

    birads, birads_table = birads_metrics(gt, dets, columns, matches, backend)
    breast, breast_table = breast_metrics(gt, dets)
    lesions, lesion_table = lesion_level(gt, matches, n_img, fppi_points)
    result = dict(mAP=mean('AP'), mAP50=mean('AP50'), mAP75=mean('AP75'),
                  **{'m' + ap_key(t): mean(ap_key(t)) for t in extra}, froc_iou=protocol['froc_iou'],
                  protocol=dict(protocol), num_images=n_img, num_detections=len(dets), per_category=per_cat,
                  birads=birads, breast=breast, operating_points=ops, recall_by_birads=by_birads,
                  lesion_level=lesions)
    if curves:
        result['_curves'] = curve_data
    data = None
    if for_bootstrap:
        data = BootstrapData(gt, dets, coco_matches=coco_sorted, extra_keys=[ap_key(t) for t in extra],
                             froc_matches=froc_sorted, fppi_points=fppi_points, breast=breast_table,
                             birads=birads_table, lesion_keys=lesion_keys(gt) if lesion_table else None)
    return result, data


def evaluate(gt: dict, dets: List[dict], froc_iou: float = 0.5, backend: str = 'numpy',
             fppi_points: Sequence[float] = FPPI_POINTS, curves: bool = False, *, iou_thrs: Sequence[float] = (),
             hit: str = 'iou', images: str = 'all', by: Sequence[str] = (), bootstrap: int = 0, ci: float = 0.95,
             seed: int = 0) -> dict:
    """Every number of ``docs/metrics.md`` for one set of detections.

    Args:
        gt: COCO ground truth (validated by :func:`validate_gt`).
        dets: detections (validated by :func:`validate_detections`).
        froc_iou: IoU at which FROC, operating points and BI-RADS matching count a hit.
        backend: COCO AP backend, ``'numpy'``, ``'faster'`` or ``'pycocotools'`` (identical numbers).
        curves: also return the PR and FROC curves under ``'_curves'`` (for plots; not JSON-worthy).
        iou_thrs: extra single-threshold APs (``AP10`` for 0.1 ...), pycocotools' procedure at that threshold.
        hit: ``'iou'`` (IoU >= froc_iou) or ``'center'`` (the detection's centre inside the box) for FROC.
        images: ``'all'`` or ``'positive'`` (only images with a ground-truth box; FPPI over them).
        by: subgroup keys (density, view, laterality, vendor): every metric again on each subgroup's images.
        bootstrap: number of study resamples for percentile intervals at level ``ci`` (0: none), seeded.
    """
    validate_gt(gt)
    protocol = check_protocol(froc_iou, hit, images, iou_thrs)
    if bootstrap < 0 or not 0 < ci < 1:
        raise EvaluationInputError(f'--bootstrap {bootstrap} / --ci {ci}: need N >= 0 and 0 < level < 1')
    gt, dets = select_images(gt, dets, images)
    groups = {key: subgroups(gt, key) for key in by}
    result, data = point_metrics(gt, dets, protocol, backend, fppi_points, curves, for_bootstrap=bootstrap > 0)
    if bootstrap:
        samples = data.samples(study_weights(len(data.units), bootstrap, seed))
        result['ci'] = ci_block(samples, bootstrap, ci, seed)
    if groups:
        result['subgroups'] = {
            key: {value: evaluate(*restrict(gt, dets, ids), backend=backend, fppi_points=fppi_points,
                                  bootstrap=bootstrap, ci=ci, seed=seed, **protocol)
                  for value, ids in values.items()}
            for key, values in groups.items()}
    return result


def compare(gt: dict, preds: Sequence[List[dict]], names: Sequence[str], bootstrap: int = 1000, ci: float = 0.95,
            seed: int = 0, backend: str = 'numpy', fppi_points: Sequence[float] = FPPI_POINTS, *,
            froc_iou: float = 0.5, iou_thrs: Sequence[float] = (), hit: str = 'iou', images: str = 'all') -> dict:
    """Paired comparison on the same study resamples; the first model is the reference.

    Returns:
        dict(reference, protocol, models={name: metrics}, differences={name: {mAP: {delta, ci, p}, ...,
        per_category: {category: {AP: ..., AP50: ..., recall_at_fppi: {f: ...}}}}}) for every other model.
    """
    validate_gt(gt)
    if len(preds) != len(names) or len(preds) < 2 or len(set(names)) != len(names):
        raise EvaluationInputError(f'compare needs two or more models with distinct names, got {list(names)}')
    protocol = check_protocol(froc_iou, hit, images, iou_thrs)
    models, samples, weights = {}, {}, None
    for name, dets in zip(names, preds):
        sel_gt, sel_dets = select_images(gt, dets, images)
        m, data = point_metrics(sel_gt, sel_dets, protocol, backend, fppi_points, for_bootstrap=bootstrap > 0)
        if bootstrap:
            weights = study_weights(len(data.units), bootstrap, seed) if weights is None else weights
            samples[name] = data.samples(weights)
            m['ci'] = ci_block(samples[name], bootstrap, ci, seed)
        models[name] = m
    ref = names[0]
    diffs = {name: _differences(models[name], models[ref], samples.get(name), samples.get(ref), ci,
                                ap_keys(protocol['iou_thrs']))
             for name in names[1:]}
    return dict(reference=ref, protocol=protocol, bootstrap=dict(n=bootstrap, level=ci, unit='study', seed=seed),
                models=models, differences=diffs)


def _differences(model: dict, ref: dict, samples: Optional[dict], ref_samples: Optional[dict], ci: float,
                 keys: List[str]) -> dict:
    """One model's differences to the reference: per mean AP, and per category AP and recall at each FPPI."""
    def entry(path, a, r):
        out = dict(delta=None if a is None or r is None else a - r)
        if samples is not None:
            out.update(difference(samples[path], ref_samples[path], ci))
        return out

    d = {'m' + k: entry(('m' + k,), model['m' + k], ref['m' + k]) for k in keys}
    d['per_category'] = {}
    for cat, v in model['per_category'].items():
        rv = ref['per_category'][cat]
        c = {k: entry(('per_category', cat, k), v[k], rv[k]) for k in keys}
        c['recall_at_fppi'] = {f: entry(('per_category', cat, 'recall_at_fppi', f), r, rv['recall_at_fppi'][f])
                               for f, r in v['recall_at_fppi'].items()}
        d['per_category'][cat] = c
    if model.get('lesion_level') and ref.get('lesion_level'):
        d['lesion_level'] = {
            cat: dict(recall_at_fppi={
                f: entry(('lesion_level', cat, 'recall_at_fppi', f), r, ref['lesion_level'][cat]['recall_at_fppi'][f])
                for f, r in v['recall_at_fppi'].items()})
            for cat, v in model['lesion_level'].items()}
    return d
