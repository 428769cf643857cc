"""The evaluation's inputs: reading them, and checking them with errors that name the file and the entry."""
from __future__ import annotations

import math
from typing import List

import numpy as np

from mammo_det.errors import UserError
from mammo_det.fileio import read_json


class EvaluationInputError(UserError, ValueError):
    """Malformed ground truth, detections or options; the message names the file and the entry."""


def load_json(path: str, what: str):
    return read_json(path, what, EvaluationInputError)


def validate_gt(gt, source: str = 'ground truth') -> None:
    if not isinstance(gt, dict) or not all(k in gt for k in ('images', 'annotations', 'categories')):
        raise EvaluationInputError(f'{source}: not a COCO dict with images, annotations and categories')
    if not gt['categories']:
        raise EvaluationInputError(f'{source}: no categories')


def validate_detections(dets, gt: dict, source: str = 'detections') -> List[dict]:
    """Checks every detection; raises naming the entry's index and what is wrong. Returns the list.

    Whole columns are checked at once; only when one fails is the list walked entry by entry, to name the first
    bad one (200,000 detections: 0.1 s instead of 1.2 s).
    """
    if isinstance(dets, dict) and 'annotations' in dets:
        raise EvaluationInputError(f'{source}: looks like a COCO ground-truth file, expected a results list')
    if not isinstance(dets, list):
        raise EvaluationInputError(f'{source}: expected a JSON list of detections, got {type(dets).__name__}')
    img_ids = {im['id'] for im in gt['images']}
    cat_ids = {c['id'] for c in gt['categories']}
    if not _columns_ok(dets, img_ids, cat_ids):
        for i, d in enumerate(dets):
            _check_one(d, f'{source}: detection {i}', img_ids, cat_ids)
    return dets


NUMBER = (int, float)  # JSON numbers (a score may not be a bool; a coordinate or probability may, as true == 1)


def _columns_ok(dets: list, img_ids: set, cat_ids: set) -> bool:
    """True when every detection is valid (one pass per field, types by set); False when any may not be."""
    try:
        if not all(type(d) is dict for d in dets):
            return False
        scores = [d['score'] for d in dets]
        boxes = [d['bbox'] for d in dets]
        if not ({d['image_id'] for d in dets} <= img_ids and {d['category_id'] for d in dets} <= cat_ids):
            return False
        if not {type(s) for s in scores} <= set(NUMBER) or not {type(b) for b in boxes} <= {list, tuple}:
            return False
        if {len(b) for b in boxes} - {4} or not {type(v) for b in boxes for v in b} <= {int, float, bool}:
            return False
        probs = [d['birads_scores'] for d in dets if d.get('birads_scores') is not None]
        if probs and (not {type(p) for p in probs} <= {list, tuple} or {len(p) for p in probs} - {3}
                      or not {type(v) for p in probs for v in p} <= {int, float, bool}):
            return False
    except (KeyError, TypeError):
        return False
    if not dets:
        return True
    s = np.asarray(scores, np.float64)
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    ok = bool(np.isfinite(s).all() and (s >= 0).all() and np.isfinite(b).all() and (b[:, 2:] > 0).all())
    return ok and (not probs or bool(np.isfinite(np.asarray(probs, np.float64)).all()))


def _check_one(d, where: str, img_ids: set, cat_ids: set) -> None:
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
    if not isinstance(s, NUMBER) or isinstance(s, bool) or not math.isfinite(s) or s < 0:
        raise EvaluationInputError(f'{where} has score {s!r}: must be a finite number >= 0')
    b = d['bbox']
    if (not isinstance(b, (list, tuple)) or len(b) != 4
            or not all(isinstance(v, NUMBER) and math.isfinite(v) for v in b)):
        raise EvaluationInputError(f'{where} has bbox {b!r}: must be 4 finite numbers [x, y, w, h]')
    if b[2] <= 0 or b[3] <= 0:
        raise EvaluationInputError(f'{where} has bbox {b!r}: width and height must be > 0')
    p = d.get('birads_scores')
    if p is not None and (not isinstance(p, (list, tuple)) or len(p) != 3
                          or not all(isinstance(v, NUMBER) and math.isfinite(v) for v in p)):
        raise EvaluationInputError(f'{where} has birads_scores {p!r}: must be 3 numbers [p3, p4, p5]')
