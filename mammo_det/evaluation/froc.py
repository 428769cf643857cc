"""Recall at false positives per image: the FROC curve, its points, operating points and recall by BI-RADS.

Input: one category's matches (:func:`coco.drop_ignored`: per detection in score order, ``tp``, ``fp``,
``scores``, ``gt_index``) and the number of evaluated images.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from mammo_det.vocab import BIRADS_VALUES

from .keys import FPPI_POINTS, fppi_key


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


def operating_points(m: dict, num_images: int, points: Sequence[float] = FPPI_POINTS) -> Dict[str, dict]:
    """Per FPPI point: the score threshold (keep ``score >= threshold``) with the best recall at FPPI <= f, the
    highest such threshold, and its recall and FPPI. A threshold cannot split tied scores, so cuts fall only after
    the last of equal scores; without ties the recall equals ``recall_at_fppi``. None: no threshold finds a box."""
    scores, tp, fp = m['scores'], m['tp'], m['fp']
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    n_img = max(num_images, 1)
    ends = np.r_[np.flatnonzero(scores[1:] != scores[:-1]), len(scores) - 1] if len(scores) else np.zeros(0, int)
    out = {}
    for f in points:
        ok = ends[cfp[ends] / n_img <= f]
        if not len(ok) or not m['num_gt'] or ctp[ok[-1]] == 0:
            out[fppi_key(f)] = dict(threshold=None, recall=0.0, fppi=0.0)
            continue
        first = ok[int(np.argmax(ctp[ok] == ctp[ok[-1]]))]
        out[fppi_key(f)] = dict(threshold=float(scores[first]), recall=float(ctp[first] / m['num_gt']),
                                fppi=float(cfp[first] / n_img))
    return out


def recall_by_birads(m: dict, anns: List[dict], category_id: int, num_images: int,
                     points: Sequence[float] = FPPI_POINTS) -> Dict[str, dict]:
    """Recall at each FPPI point (the same cut as ``recall_at_fppi``) of the boxes of each finding BI-RADS."""
    totals = {b: 0 for b in BIRADS_VALUES}
    for a in anns:
        if a['category_id'] == category_id and not a.get('iscrowd', 0) and a.get('birads') in totals:
            totals[a['birads']] += 1
    fppi = np.cumsum(m['fp']) / max(num_images, 1)
    found = np.array([anns[g].get('birads') if t else None for t, g in zip(m['tp'], m['gt_index'])], object)
    out = {}
    for f in points:
        cut = int((fppi <= f).sum())
        hits = list(found[:cut])
        out[fppi_key(f)] = {str(b): (hits.count(b) / n if n else None) for b, n in totals.items()}
    return out
