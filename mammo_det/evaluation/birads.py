"""BI-RADS of the detections: accuracy and confusion on matched boxes, and the class-agnostic AP of the
suspicious (BI-RADS 4-5) boxes scored by P(finding) x P(BI-RADS 4 or 5)."""
from __future__ import annotations

from itertools import chain
from typing import Dict, List

import numpy as np

from mammo_det.vocab import BIRADS_VALUES, birads_class

from .coco import (Detections, ap_from_precision, image_positions, match_sorted, precision_by_category,
                   reference_precision)
from .keys import COCO_IOU_THRS, IOU50


def birads_metrics(gt: dict, dets: List[dict], columns: Detections, matches: Dict[int, dict],
                   backend: str) -> tuple:
    """(metrics or None, what the bootstrap needs or None): ``boxes``, (image id, prediction right) of each matched
    box with a known BI-RADS, or None; ``suspicious``, the (ground truth, detection columns, their
    :func:`coco.match_sorted` at the COCO thresholds) of :func:`suspicious_set`.

    Args:
        columns: ``dets`` as :class:`coco.Detections`.
        matches: per category, the FROC matches (:func:`coco.drop_ignored`).
        backend: as :func:`coco.choose_backend` gave it.
    """
    if not any('birads_scores' in d for d in dets):
        return None, None
    confusion, boxes = _confusion(gt['annotations'], dets, matches)
    n = int(confusion.sum())
    out = dict(matched=n, accuracy=float(np.trace(confusion) / n) if n else None,
               majority_baseline=float(confusion.sum(1).max() / n) if n else None,
               confusion=confusion.tolist(), labels=list(BIRADS_VALUES))
    s_gt, s_columns = suspicious_set(gt, dets, columns)
    s_matches = match_sorted(s_gt, s_columns, list(COCO_IOU_THRS))
    out.update(suspicious_ap(s_gt, s_columns, s_matches, backend))
    table = dict(boxes=(np.array([b[0] for b in boxes]), np.array([b[1] for b in boxes], bool)) if boxes else None,
                 suspicious=(s_gt, s_columns, s_matches[1]))
    return out, table


def _confusion(anns: List[dict], dets: List[dict], matches: Dict[int, dict]) -> tuple:
    """(3 x 3 counts, rows true 3/4/5 and columns predicted; (image id, right) per counted box)."""
    confusion = np.zeros((3, 3), int)
    boxes = []
    for m in matches.values():
        for di, gi in zip(m['det_index'][m['tp']], m['gt_index'][m['tp']]):
            true = anns[gi].get('birads')
            p = dets[di].get('birads_scores')
            if true not in BIRADS_VALUES or p is None:
                continue
            confusion[birads_class(true), int(np.argmax(p))] += 1
            boxes.append((anns[gi]['image_id'], birads_class(true) == int(np.argmax(p))))
    return confusion, boxes


def suspicious_set(gt: dict, dets: List[dict], columns: Detections) -> tuple:
    """(ground truth, detections) of one category: boxes with finding BI-RADS 4 or 5 (one per image and box,
    whatever its categories), and every detection with BI-RADS probabilities, scored P(finding) x P(BI-RADS 4/5),
    as :class:`coco.Detections` (the rows of ``columns`` that have probabilities)."""
    seen, s_anns = set(), []
    for a in gt['annotations']:
        key = (a['image_id'], tuple(a['bbox']))
        if a.get('birads') in (4, 5) and key not in seen:
            seen.add(key)
            s_anns.append(dict(a, id=len(s_anns) + 1, category_id=1))
    has = np.flatnonzero(np.fromiter((d.get('birads_scores') is not None for d in dets), bool, len(dets)))
    probs = np.fromiter(chain.from_iterable(dets[i]['birads_scores'] for i in has), np.float64, 3 * len(has))
    probs = probs.reshape(-1, 3)
    s_columns = Detections(columns.image_pos[has], np.ones(len(has), np.int64),
                           columns.score[has] * (probs[:, 1] + probs[:, 2]), columns.boxes[has])
    s_gt = dict(images=gt['images'], annotations=s_anns, categories=[dict(id=1, name='BI-RADS 4-5')])
    return s_gt, s_columns


def suspicious_ap(s_gt: dict, s_columns: Detections, s_matches: Dict[int, dict], backend: str) -> dict:
    """``suspicious_AP``, ``suspicious_AP50`` and ``suspicious_num_gt`` of :func:`suspicious_set`'s boxes, from
    their :func:`coco.match_sorted` at the COCO thresholds (``backend`` other than ``'numpy'``: its own run on
    the set written out as result dicts)."""
    s_anns = s_gt['annotations']
    out = {}
    if s_anns and len(s_columns.score):
        if backend == 'numpy':
            prec = precision_by_category(s_matches, len(COCO_IOU_THRS))[1]
        else:
            prec = reference_precision(s_gt, _result_dicts(s_gt, s_columns), COCO_IOU_THRS, backend)[1]
        out['suspicious_AP'] = ap_from_precision(prec)
        out['suspicious_AP50'] = ap_from_precision(prec[IOU50])
    else:
        out['suspicious_AP'] = out['suspicious_AP50'] = 0.0 if s_anns else None
    out['suspicious_num_gt'] = len(s_anns)
    return out


def _result_dicts(gt: dict, columns: Detections) -> List[dict]:
    ids = list(image_positions(gt))
    return [dict(image_id=ids[p], category_id=int(c), bbox=b, score=s) for p, c, b, s in
            zip(columns.image_pos.tolist(), columns.category_id.tolist(), columns.boxes.tolist(),
                columns.score.tolist())]
