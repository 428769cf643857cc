"""The evaluation protocol (which images, what counts as a hit, extra IoU thresholds) and subgroups of images."""
from __future__ import annotations

from typing import Dict, List, Sequence

from .inputs import EvaluationInputError
from .keys import HITS, IMAGE_SETS, SUBGROUP_FIELDS, ap_key


def check_protocol(froc_iou: float = 0.5, hit: str = 'iou', images: str = 'all',
                   iou_thrs: Sequence[float] = ()) -> dict:
    """The protocol block of ``metrics.json``; raises :class:`EvaluationInputError` naming a bad option."""
    if not 0 < froc_iou <= 1:
        raise EvaluationInputError(f'--froc-iou {froc_iou}: must be in (0, 1]')
    if hit not in HITS:
        raise EvaluationInputError(f'--hit {hit!r}: must be one of {", ".join(HITS)}')
    if images not in IMAGE_SETS:
        raise EvaluationInputError(f'--images {images!r}: must be one of {", ".join(IMAGE_SETS)}')
    thrs = [float(t) for t in iou_thrs]
    for t in thrs:
        if not 0 < t < 1:
            raise EvaluationInputError(f'--iou-thrs {t}: must be in (0, 1)')
        if ap_key(t) in ('AP50', 'AP75') or thrs.count(t) > 1:
            raise EvaluationInputError(f'--iou-thrs {t}: {ap_key(t)} is already reported or repeated')
    return dict(images=images, froc_iou=froc_iou, hit=hit, iou_thrs=thrs)


def select_images(gt: dict, dets: List[dict], images: str) -> tuple:
    """``images='positive'``: only images with a ground-truth box, and only the detections on them."""
    if images == 'all':
        return gt, dets
    keep = {a['image_id'] for a in gt['annotations']}
    return (dict(gt, images=[im for im in gt['images'] if im['id'] in keep]),
            [d for d in dets if d['image_id'] in keep])


def subgroups(gt: dict, key: str) -> Dict[str, set]:
    """Subgroup value (as written in the image field, as a string) -> image ids; raises naming a bad key/field."""
    if key not in SUBGROUP_FIELDS:
        raise EvaluationInputError(f'unknown subgroup key {key!r}: use one of {", ".join(SUBGROUP_FIELDS)}')
    field = SUBGROUP_FIELDS[key]
    lacking = [im for im in gt['images'] if im.get(field) is None]
    if lacking:
        first = lacking[0].get('file_name', lacking[0]['id'])
        raise EvaluationInputError(f'subgroup {key!r} needs the image field {field!r}: {len(lacking)} of '
                                   f"{len(gt['images'])} images lack it (first: {first})"
                                   + ('; convert again with this version to record it' if key == 'vendor' else ''))
    out: Dict[str, set] = {}
    for im in gt['images']:
        out.setdefault(str(im[field]), set()).add(im['id'])
    return dict(sorted(out.items()))


def restrict(gt: dict, dets: List[dict], ids: set) -> tuple:
    """The ground truth and detections of the images ``ids`` only."""
    return (dict(gt, images=[im for im in gt['images'] if im['id'] in ids],
                 annotations=[a for a in gt['annotations'] if a['image_id'] in ids]),
            [d for d in dets if d['image_id'] in ids])
