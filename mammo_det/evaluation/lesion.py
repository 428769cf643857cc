"""Lesion-level FROC: where the ground truth links a finding's boxes across views (``lesion_id`` on the annotations
of one breast), a lesion is found at a score when any of its boxes is hit (in either view) by a detection scoring
at least that; false positives are counted per image, exactly as the per-view FROC counts them. Boxes without a
``lesion_id`` are lesions of their own; ground truth without any ``lesion_id`` has no lesion level (None)."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from .froc import recall_at_fppi
from .keys import FPPI_POINTS


def lesion_keys(gt: dict) -> Optional[List[tuple]]:
    """Per annotation its lesion: (image's study, laterality, lesion_id), or the annotation itself when it has no
    lesion_id; None when no annotation has one."""
    anns = gt['annotations']
    if not any(a.get('lesion_id') for a in anns):
        return None
    images = {im['id']: im for im in gt['images']}
    out = []
    for i, a in enumerate(anns):
        im = images.get(a['image_id'], {})
        out.append((im.get('study_id'), im.get('laterality'), a['category_id'], a['lesion_id']) if a.get('lesion_id')
                   else ('box', i))
    return out


def lesion_events(m: dict, keys: List[tuple]) -> np.ndarray:
    """Along one category's FROC matches (score order): 1 where a detection finds a lesion for the first time, 0
    elsewhere (false positives stay false positives; a second hit of a found lesion counts neither way)."""
    seen, first = set(), np.zeros(len(m['tp']), bool)
    for k, (t, g) in enumerate(zip(m['tp'], m['gt_index'])):
        if t and keys[g] not in seen:
            seen.add(keys[g])
            first[k] = True
    return first


def lesion_level(gt: dict, matches: Dict[int, dict], num_images: int,
                 fppi_points: Sequence[float] = FPPI_POINTS) -> tuple:
    """(metrics per category name or None, per category id (first-hit events, number of lesions per image id) for
    the bootstrap)."""
    keys = lesion_keys(gt)
    if keys is None:
        return None, None
    anns = gt['annotations']
    names = {c['id']: c['name'] for c in gt['categories']}
    out, table = {}, {}
    for cid, m in matches.items():
        lesions: Dict[tuple, int] = {}
        for i, a in enumerate(anns):
            if a['category_id'] == cid and not a.get('iscrowd', 0):
                lesions.setdefault(keys[i], a['image_id'])  # a lesion is counted on its first box's image
        first = lesion_events(m, keys)
        _, _, at = recall_at_fppi(first, m['fp'], len(lesions), num_images, fppi_points)
        out[names[cid]] = dict(num_lesions=len(lesions), recall_at_fppi=at)
        table[cid] = (first, list(lesions.values()))
    return out, table
