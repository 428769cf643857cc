"""BI-RADS of the detections: accuracy and confusion on matched boxes, and the class-agnostic AP of the
suspicious (BI-RADS 4-5) boxes scored by P(finding) x P(BI-RADS 4 or 5)."""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from mammo_det.vocab import BIRADS_VALUES, birads_class

from .coco import ap_from_precision, coco_precision
from .keys import IOU50


def birads_metrics(gt: dict, dets: List[dict], matches: Dict[int, dict], backend: str) -> tuple:
    """(metrics or None, what the bootstrap needs or None): ``boxes``, (image id, prediction right) of each matched
    box with a known BI-RADS, or None; ``suspicious``, the (ground truth, detections) of :func:`suspicious_set`.

    Args:
        matches: per category, the FROC matches (:func:`coco.drop_ignored`).
    """
    if not any('birads_scores' in d for d in dets):
        return None, None
    confusion, boxes = _confusion(gt['annotations'], dets, matches)
    n = int(confusion.sum())
    out = dict(matched=n, accuracy=float(np.trace(confusion) / n) if n else None,
               majority_baseline=float(confusion.sum(1).max() / n) if n else None,
               confusion=confusion.tolist(), labels=list(BIRADS_VALUES))
    s_gt, s_dets = suspicious_set(gt, dets)
    out.update(suspicious_ap(s_gt, s_dets, backend))
    table = dict(boxes=(np.array([b[0] for b in boxes]), np.array([b[1] for b in boxes], bool)) if boxes else None,
                 suspicious=(s_gt, s_dets))
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


def suspicious_set(gt: dict, dets: List[dict]) -> tuple:
    """One-category ground truth and detections: boxes with finding BI-RADS 4 or 5 (one per image and box, whatever
    its categories), and every detection with BI-RADS probabilities, scored P(finding) x P(BI-RADS 4/5)."""
    seen, s_anns = set(), []
    for a in gt['annotations']:
        key = (a['image_id'], tuple(a['bbox']))
        if a.get('birads') in (4, 5) and key not in seen:
            seen.add(key)
            s_anns.append(dict(a, id=len(s_anns) + 1, category_id=1))
    s_dets = [dict(image_id=d['image_id'], category_id=1, bbox=d['bbox'],
                   score=float(d['score']) * float(sum(d['birads_scores'][1:])))
              for d in dets if d.get('birads_scores') is not None]
    return dict(images=gt['images'], annotations=s_anns, categories=[dict(id=1, name='BI-RADS 4-5')]), s_dets


def suspicious_ap(s_gt: dict, s_dets: List[dict], backend: str) -> dict:
    """``suspicious_AP``, ``suspicious_AP50`` and ``suspicious_num_gt`` of :func:`suspicious_set`'s boxes."""
    s_anns = s_gt['annotations']
    out = {}
    if s_anns and s_dets:
        prec, _ = coco_precision(s_gt, s_dets, backend=backend)
        out['suspicious_AP'] = ap_from_precision(prec[:, :, 0])
        out['suspicious_AP50'] = ap_from_precision(prec[IOU50, :, 0])
    else:
        out['suspicious_AP'] = out['suspicious_AP50'] = 0.0 if s_anns else None
    out['suspicious_num_gt'] = len(s_anns)
    return out
