"""Breast level: a breast's score is the highest detection score over its images (CC and MLO); ROC AUC of that
score against breast BI-RADS >= 4 and >= 3."""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np


def auc(scores: np.ndarray, labels: np.ndarray) -> Optional[float]:
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


def breast_metrics(gt: dict, dets: List[dict]) -> tuple:
    """(metrics or None, (study id, score, BI-RADS) of each breast, for the bootstrap). Images without a breast
    BI-RADS (some EMBED exams) are left out of it."""
    imgs = [im for im in gt['images'] if im.get('breast_birads') is not None]
    if not imgs or not all(im.get(k) is not None for im in imgs for k in ('study_id', 'laterality')):
        return None, None
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
    metrics = {'num_breasts': len(breasts), 'num_birads_ge4': int((birads >= 4).sum()),
               'num_birads_ge3': int((birads >= 3).sum()),
               'auc_birads_ge4': auc(scores, birads >= 4), 'auc_birads_ge3': auc(scores, birads >= 3)}
    return metrics, ([k[0] for k in breasts], scores, birads)
