"""The numbers of ``mammo-det evaluate`` and of the MMDetection metric, as defined in ``shared/METRICS.md``.

Input: a COCO ground-truth dict (as the converter writes it: ``birads`` per annotation, ``study_id`` and
``laterality`` and ``breast_birads`` per image) and COCO-style detections (``image_id``, ``category_id``,
``bbox`` xywh, ``score``, optionally ``birads_scores`` [p3, p4, p5]).
"""
from __future__ import annotations

import json
import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from mammo_det.vocab import BIRADS_VALUES, birads_class

from .coco import ap_from_precision, coco_precision, match_all

FPPI_POINTS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)
HEADLINE_FPPI = 0.5  # the FROC point that tables, plots and the leaderboard single out


class EvaluationInputError(ValueError):
    """Malformed ground truth or detections; the message names the file and the entry."""


def fppi_key(f: float) -> str:
    """The key of FPPI point ``f`` in ``recall_at_fppi`` ('0.125', '0.5', '1', ...)."""
    return f'{f:g}'


def load_json(path: str, what: str):
    try:
        with open(path) as fh:
            return json.load(fh)
    except OSError as exc:
        raise EvaluationInputError(f'{path}: cannot read {what} ({exc.strerror})') from None
    except json.JSONDecodeError as exc:
        raise EvaluationInputError(f'{path}: {what} is not valid JSON ({exc})') from None


def validate_gt(gt, source: str = 'ground truth') -> None:
    if not isinstance(gt, dict) or not all(k in gt for k in ('images', 'annotations', 'categories')):
        raise EvaluationInputError(f'{source}: not a COCO dict with images, annotations and categories')
    if not gt['categories']:
        raise EvaluationInputError(f'{source}: no categories')


def validate_detections(dets, gt: dict, source: str = 'detections') -> List[dict]:
    """Checks every detection; raises naming the entry's index and what is wrong. Returns the list."""
    if isinstance(dets, dict) and 'annotations' in dets:
        raise EvaluationInputError(f'{source}: looks like a COCO ground-truth file, expected a results list')
    if not isinstance(dets, list):
        raise EvaluationInputError(f'{source}: expected a JSON list of detections, got {type(dets).__name__}')
    img_ids = {im['id'] for im in gt['images']}
    cat_ids = {c['id'] for c in gt['categories']}
    for i, d in enumerate(dets):
        where = f'{source}: detection {i}'
        if not isinstance(d, dict):
            raise EvaluationInputError(f'{where} is not an object')
        for key in ('image_id', 'category_id', 'bbox', 'score'):
            if key not in d:
                raise EvaluationInputError(f'{where} has no {key!r}')
        if d['image_id'] not in img_ids:
            raise EvaluationInputError(f"{where} names unknown image_id {d['image_id']!r}")
        if d['category_id'] not in cat_ids:
            raise EvaluationInputError(f"{where} names unknown category_id {d['category_id']!r}")
        s = d['score']
        if not isinstance(s, (int, float)) or isinstance(s, bool) or not math.isfinite(s) or s < 0:
            raise EvaluationInputError(f'{where} has score {s!r}: must be a finite number >= 0')
        b = d['bbox']
        if (not isinstance(b, (list, tuple)) or len(b) != 4
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in b)):
            raise EvaluationInputError(f'{where} has bbox {b!r}: must be 4 finite numbers [x, y, w, h]')
        if b[2] <= 0 or b[3] <= 0:
            raise EvaluationInputError(f'{where} has bbox {b!r}: width and height must be > 0')
        p = d.get('birads_scores')
        if p is not None and (not isinstance(p, (list, tuple)) or len(p) != 3
                              or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in p)):
            raise EvaluationInputError(f'{where} has birads_scores {p!r}: must be 3 numbers [p3, p4, p5]')
    return dets


def recall_at_fppi(tp: np.ndarray, fp: np.ndarray, num_gt: int, num_images: int,
                   points: Sequence[float] = FPPI_POINTS) -> tuple:
    """FROC curve and its points: the largest recall reached while FPPI <= f.

    Args:
        tp, fp: per detection, sorted by descending score.
    Returns:
        (recall curve, fppi curve, {f: recall}).
    """
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    recall = ctp / num_gt if num_gt else np.zeros(len(ctp))
    fppi = cfp / max(num_images, 1)
    result = {}
    for f in points:
        ok = fppi <= f
        result[fppi_key(f)] = float(recall[ok].max()) if num_gt and ok.any() else 0.0
    return recall, fppi, result


def _auc(scores: np.ndarray, labels: np.ndarray) -> Optional[float]:
    """ROC AUC by the rank-sum (Mann-Whitney) statistic, ties counted half; None with one class only."""
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return None
    order = np.argsort(scores, kind='mergesort')
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _birads_metrics(gt: dict, dets: List[dict], matches: Dict[int, dict], backend: str) -> Optional[dict]:
    if not any('birads_scores' in d for d in dets):
        return None
    anns = gt['annotations']
    confusion = np.zeros((3, 3), int)  # rows: true 3/4/5, columns: predicted
    for m in matches.values():
        for di, gi in zip(m['det_index'][m['tp']], m['gt_index'][m['tp']]):
            true = anns[gi].get('birads')
            p = dets[di].get('birads_scores')
            if true not in BIRADS_VALUES or p is None:
                continue
            confusion[birads_class(true), int(np.argmax(p))] += 1
    n = int(confusion.sum())
    out = dict(matched=n, accuracy=float(np.trace(confusion) / n) if n else None,
               majority_baseline=float(confusion.sum(1).max() / n) if n else None,
               confusion=confusion.tolist(), labels=list(BIRADS_VALUES))
    # Suspicious group (BI-RADS 4-5): class-agnostic boxes; a detection's score is P(finding) x P(BI-RADS 4/5).
    seen, s_anns = set(), []
    for a in anns:
        key = (a['image_id'], tuple(a['bbox']))
        if a.get('birads') in (4, 5) and key not in seen:
            seen.add(key)
            s_anns.append(dict(a, id=len(s_anns) + 1, category_id=1))
    s_dets = [dict(image_id=d['image_id'], category_id=1, bbox=d['bbox'],
                   score=float(d['score']) * float(sum(d['birads_scores'][1:])))
              for d in dets if d.get('birads_scores') is not None]
    if s_anns and s_dets:
        s_gt = dict(images=gt['images'], annotations=s_anns, categories=[dict(id=1, name='BI-RADS 4-5')])
        prec, _ = coco_precision(s_gt, s_dets, backend=backend)
        out['suspicious_AP'] = ap_from_precision(prec[:, :, 0])
        out['suspicious_AP50'] = ap_from_precision(prec[0, :, 0])
    else:
        out['suspicious_AP'] = out['suspicious_AP50'] = 0.0 if s_anns else None
    out['suspicious_num_gt'] = len(s_anns)
    return out


def _breast_metrics(gt: dict, dets: List[dict]) -> Optional[dict]:
    imgs = gt['images']
    if not imgs or not all(k in im for im in imgs for k in ('study_id', 'laterality', 'breast_birads')):
        return None
    best: Dict[int, float] = {}
    for d in dets:
        best[d['image_id']] = max(best.get(d['image_id'], 0.0), float(d['score']))
    breasts: Dict[tuple, list] = {}
    for im in imgs:
        b = breasts.setdefault((im['study_id'], im['laterality']), [0.0, im['breast_birads']])
        b[0] = max(b[0], best.get(im['id'], 0.0))
        b[1] = max(b[1], im['breast_birads'])
    scores = np.array([v[0] for v in breasts.values()])
    birads = np.array([v[1] for v in breasts.values()])
    return {'num_breasts': len(breasts), 'num_birads_ge4': int((birads >= 4).sum()),
            'num_birads_ge3': int((birads >= 3).sum()),
            'auc_birads_ge4': _auc(scores, birads >= 4), 'auc_birads_ge3': _auc(scores, birads >= 3)}


def evaluate(gt: dict, dets: List[dict], froc_iou: float = 0.5, backend: str = 'faster',
             fppi_points: Sequence[float] = FPPI_POINTS, curves: bool = False) -> dict:
    """Every number of ``shared/METRICS.md`` for one set of detections.

    Args:
        gt: COCO ground truth (validated by :func:`validate_gt`).
        dets: detections (validated by :func:`validate_detections`).
        froc_iou: IoU at which FROC and BI-RADS matching count a hit.
        backend: COCO backend, ``'faster'`` or ``'pycocotools'`` (identical numbers).
        curves: also return the PR and FROC curves under ``'_curves'`` (for plots; not JSON-worthy).
    """
    validate_gt(gt)
    cats = sorted(gt['categories'], key=lambda c: c['id'])
    per_cat: Dict[str, dict] = {}
    precision = None
    if dets:
        precision, params = coco_precision(gt, dets, backend=backend)
        cat_index = {cid: k for k, cid in enumerate(params.catIds)}
    matches = match_all(gt, dets, froc_iou)
    num_gt = {c: m['num_gt'] for c, m in matches.items()}
    curve_data = {}
    for c in cats:
        k = cat_index.get(c['id']) if precision is not None else None
        if num_gt[c['id']] == 0:
            ap = ap50 = ap75 = None
        elif k is None:
            ap = ap50 = ap75 = 0.0
        else:
            ap = ap_from_precision(precision[:, :, k])
            ap50 = ap_from_precision(precision[0, :, k])
            ap75 = ap_from_precision(precision[5, :, k])
        m = matches[c['id']]
        rec, fppi, at = recall_at_fppi(m['tp'], m['fp'], num_gt[c['id']], len(gt['images']), fppi_points)
        per_cat[c['name']] = dict(AP=ap, AP50=ap50, AP75=ap75, num_gt=num_gt[c['id']], recall_at_fppi=at)
        if curves:
            pr = precision[0, :, k] if k is not None else np.zeros(101)
            curve_data[c['name']] = dict(froc_recall=rec, froc_fppi=fppi, pr_precision=pr,
                                         pr_recall=np.linspace(0, 1, 101))

    def mean(key: str) -> float:
        vals = [v[key] for v in per_cat.values() if v[key] is not None]
        return float(np.mean(vals)) if vals else 0.0

    result = dict(mAP=mean('AP'), mAP50=mean('AP50'), mAP75=mean('AP75'), froc_iou=froc_iou,
                  num_images=len(gt['images']), num_detections=len(dets), per_category=per_cat,
                  birads=_birads_metrics(gt, dets, matches, backend), breast=_breast_metrics(gt, dets))
    if curves:
        result['_curves'] = curve_data
    return result


def per_category_rows(metrics: dict) -> List[dict]:
    """One flat row per category (the CSV and the printed table)."""
    rows = []
    for name, v in metrics['per_category'].items():
        row = dict(category=name, num_gt=v['num_gt'], AP=v['AP'], AP50=v['AP50'], AP75=v['AP75'])
        row.update({f'R@{k}FPPI': r for k, r in v['recall_at_fppi'].items()})
        rows.append(row)
    return rows


def format_table(metrics: dict) -> str:
    """The per-category table as fixed-width text (what the CLI prints and the MMEngine logger shows)."""
    from mammo_det.tables import format_rows

    rows = per_category_rows(metrics) or [dict(category='')]
    summary = dict(category='mean', num_gt='', AP=metrics['mAP'], AP50=metrics['mAP50'], AP75=metrics['mAP75'])
    out = [format_rows(rows + [summary], cols=list(rows[0]), digits=4, style='text')]
    b = metrics.get('birads')
    if b and b.get('accuracy') is not None:
        out.append(f"BI-RADS on {b['matched']} matched boxes: accuracy {b['accuracy']:.4f} "
                   f"(majority baseline {b['majority_baseline']:.4f}); suspicious (4-5) AP {b['suspicious_AP']}")
    br = metrics.get('breast')
    if br:
        out.append(f"breast level ({br['num_breasts']} breasts): AUC BI-RADS>=4 {br['auc_birads_ge4']}, "
                   f">=3 {br['auc_birads_ge3']}")
    return '\n'.join(out)
