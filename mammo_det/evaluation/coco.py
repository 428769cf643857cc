"""Per-category COCO AP, pycocotools' matching, and the precision curves built from it.

Definitions: ``docs/metrics.md``. Area range "all" only and maxDets 100: the per-category numbers are exactly
pycocotools' ``precision[:, :, k, 0, -1]`` slice (small/medium/large areas mean nothing at mammogram scale).

Backends (``BACKENDS``): ``'numpy'``, the default, accumulates this module's own matching (:func:`match_sorted`,
which FROC, BI-RADS and the bootstrap need anyway) with faster-coco-eval's arithmetic (:func:`accumulate`), so its
precision arrays equal faster-coco-eval's bit for bit, at a fraction of the cost of a second pass over the
detections; ``'faster'`` runs faster-coco-eval (:func:`reference_precision`), ``'pycocotools'`` the reference
COCOeval (equal within 1e-12: pycocotools adds 2.2e-16 to precision's denominator). :func:`choose_backend` says
where ``'numpy'`` defers to faster-coco-eval.
"""
from __future__ import annotations

import contextlib
import io
from itertools import chain
from typing import Dict, List, NamedTuple, Optional, Sequence, Union

import numpy as np

from .keys import AREA_ALL, HITS, MAX_DETS, RECALL_THRS

BACKENDS = ('numpy', 'faster', 'pycocotools')


class Detections(NamedTuple):
    """Detections as the columns matching reads, extracted from the JSON dicts once (:func:`detection_columns`)."""
    image_pos: np.ndarray  # position of the image among the ground truth's images sorted by id (-1: none)
    category_id: np.ndarray
    score: np.ndarray
    boxes: np.ndarray  # [n, 4] xywh


def image_positions(gt: dict) -> Dict[int, int]:
    """Image id -> position among the ground truth's images sorted by id (pycocotools' image order); the keys come
    in that order, so ``list(image_positions(gt))[p]`` is the id at position ``p``."""
    return {im['id']: k for k, im in enumerate(sorted(gt['images'], key=lambda im: im['id']))}


def detection_columns(gt: dict, dets: List[dict]) -> Detections:
    """:class:`Detections` of the result dicts ``dets`` (validated: :func:`inputs.validate_detections`)."""
    n = len(dets)
    img_pos = image_positions(gt)
    return Detections(np.fromiter((img_pos.get(d['image_id'], -1) for d in dets), np.int64, n),
                      np.fromiter((d['category_id'] for d in dets), np.int64, n),
                      np.fromiter((d['score'] for d in dets), np.float64, n),
                      np.fromiter(chain.from_iterable(d['bbox'] for d in dets), np.float64, 4 * n).reshape(n, 4))


def _silent(*args, **kwargs) -> None:
    pass


def coco_precision(gt: dict, dets: List[dict], iou_thrs: Optional[Sequence[float]] = None,
                   backend: str = 'faster') -> tuple:
    """Runs COCO bbox evaluation (area "all", maxDets 100) and returns ``(precision, params)``.

    Args:
        gt: COCO ground-truth dict.
        dets: COCO results list (``image_id``, ``category_id``, ``bbox`` xywh, ``score``); not empty.
        iou_thrs: IoU thresholds; default pycocotools' 0.50:0.05:0.95.
        backend: ``'faster'`` (faster-coco-eval) or ``'pycocotools'`` (the reference).

    Returns:
        precision: array [T, R, K] (-1 where a category has no ground truth), categories in ``params.catIds``.
    """
    # Both write into the dicts they are given (an area, an id and a polygon per result, ``ignore`` per box).
    gt = dict(gt, annotations=[dict(a) for a in gt['annotations']])
    dets = [dict(d) for d in dets]
    if backend == 'faster':
        from faster_coco_eval import COCO, COCOeval_faster as Eval

        coco_gt = COCO(gt)
        coco_dt = coco_gt.loadRes(dets)
        ev = Eval(coco_gt, coco_dt, 'bbox', print_function=_silent)
    elif backend == 'pycocotools':
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval as Eval

        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(dets)
        ev = Eval(coco_gt, coco_dt, 'bbox')
    else:
        raise ValueError(f"backend must be 'faster' or 'pycocotools', got {backend!r}")
    ev.params.imgIds = sorted(coco_gt.getImgIds())
    ev.params.catIds = sorted(coco_gt.getCatIds())
    ev.params.areaRng = [AREA_ALL]
    ev.params.areaRngLbl = ['all']
    ev.params.maxDets = [MAX_DETS]
    if iou_thrs is not None:
        ev.params.iouThrs = np.asarray(iou_thrs, dtype=np.float64)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
    return np.asarray(ev.eval['precision'])[:, :, :, 0, -1], ev.params


def accumulate(tp: np.ndarray, fp: np.ndarray, num_gt: int) -> np.ndarray:
    """COCOeval's accumulate() of one category from :func:`match_sorted`'s rows (``tp``, ``fp`` [T, n] in its order):
    the interpolated precision [T, len(RECALL_THRS)], -1 without ground truth, 0 past the last recall reached.

    Precision is tp / (tp + fp) (0 before the first counted detection), recall tp / num_gt, both from integer
    counts, then the running maximum from the right and the first recall >= each threshold: faster-coco-eval's C++
    steps, so the array equals its output bit for bit.
    """
    out = np.full((tp.shape[0], len(RECALL_THRS)), -1.0)
    if num_gt == 0:
        return out
    n = tp.shape[1]
    if n == 0:
        return np.zeros_like(out)
    ctp, cfp = np.cumsum(tp, axis=1), np.cumsum(fp, axis=1)
    recall = ctp / num_gt
    counted = ctp + cfp
    precision = np.where(counted > 0, ctp / np.maximum(counted, 1), 0.0)
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    for t in range(len(out)):
        first = np.searchsorted(recall[t], RECALL_THRS, side='left')
        out[t] = np.where(first < n, precision[t, np.minimum(first, n - 1)], 0.0)
    return out


def precision_by_category(matches: Dict[int, dict], num_thrs: int) -> Dict[int, np.ndarray]:
    """Category id -> :func:`accumulate` of the first ``num_thrs`` rows of its :func:`match_sorted` matches."""
    return {c: accumulate(m['tp'][:num_thrs], m['fp'][:num_thrs], m['num_gt']) for c, m in matches.items()}


def reference_precision(gt: dict, dets: List[dict], iou_thrs: Sequence[float], backend: str) -> Dict[int, np.ndarray]:
    """:func:`precision_by_category`'s result from faster-coco-eval or pycocotools (``backend``) run on the dicts
    (``dets`` not empty)."""
    precision, params = coco_precision(gt, dets, iou_thrs, backend)
    return {c: precision[:, :, k] for k, c in enumerate(params.catIds)}


def choose_backend(backend: str, gt: dict, columns: Detections) -> str:
    """``backend``, except that ``'numpy'`` becomes ``'faster'`` where pycocotools' bookkeeping departs from plain
    box matching, so the numbers stay its numbers: annotation ids 0 (a match to it is recorded as "unmatched") or
    repeated (its index keeps one), boxes of images not in the ground truth (not counted), and boxes outside the
    area range "all" (ignored)."""
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
    if backend != 'numpy':
        return backend
    anns = gt['annotations']
    ids = [a.get('id') for a in anns]
    lo, hi = AREA_ALL
    try:
        plain = (0 not in ids and len(set(ids)) == len(ids)
                 and {a['image_id'] for a in anns} <= {im['id'] for im in gt['images']}
                 and all(lo <= a.get('area', 0) <= hi for a in anns)
                 and bool((columns.boxes[:, 2] * columns.boxes[:, 3] <= hi).all()))
    except TypeError:  # an area that is not a number
        plain = False
    return backend if plain else 'faster'


def ap_from_precision(precision: np.ndarray) -> float:
    """pycocotools' summarize(): mean of the valid (> -1) entries, -1 when there are none."""
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else -1.0


def iou_matrix(dets: np.ndarray, gts: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """pycocotools' maskUtils.iou for xywh boxes: for a crowd gt the union is the detection's area."""
    if len(dets) == 0 or len(gts) == 0:
        return np.zeros((len(dets), len(gts)))
    dx1, dy1 = dets[:, 0:1], dets[:, 1:2]
    dx2, dy2 = dx1 + dets[:, 2:3], dy1 + dets[:, 3:4]
    gx1, gy1 = gts[:, 0], gts[:, 1]
    gx2, gy2 = gx1 + gts[:, 2], gy1 + gts[:, 3]
    iw = (np.minimum(dx2, gx2) - np.maximum(dx1, gx1)).clip(0)
    ih = (np.minimum(dy2, gy2) - np.maximum(dy1, gy1)).clip(0)
    inter = iw * ih
    d_area = dets[:, 2:3] * dets[:, 3:4]
    union = np.where(crowd[None, :], d_area, d_area + gts[:, 2] * gts[:, 3] - inter)
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_image(det_boxes: np.ndarray, det_scores: np.ndarray, gt_boxes: np.ndarray, gt_ignore: np.ndarray,
                gt_crowd: np.ndarray, iou_thr) -> tuple:
    """pycocotools' ``evaluateImg`` greedy matching of one (image, category), at one or several IoU thresholds.

    Args:
        iou_thr: a threshold, or a sequence of them (the IoUs are computed once; each threshold matches
            independently, as pycocotools does).

    Returns:
        (order, matched_gt, det_ignored): detections kept (top ``MAX_DETS`` by score, stable), for each the
        index of its matched gt (-1 if none), and whether it matched an ignored gt (neither TP nor FP). With a
        sequence of thresholds the last two are [T, D] arrays.
    """
    thrs = np.atleast_1d(np.asarray(iou_thr, dtype=np.float64))
    order = np.argsort(-det_scores, kind='mergesort')[:MAX_DETS]
    gorder = np.argsort(gt_ignore, kind='mergesort')  # non-ignored gts first, as pycocotools
    g_boxes, g_ign, g_crowd = gt_boxes[gorder], gt_ignore[gorder], gt_crowd[gorder]
    ious = iou_matrix(det_boxes[order], g_boxes, g_crowd)
    matched = np.full((len(thrs), len(order)), -1)
    ignored = np.zeros((len(thrs), len(order)), bool)
    for t, iou_t in enumerate(thrs):
        thr = min(iou_t, 1 - 1e-10)
        taken = np.zeros(len(gorder), bool)
        for d in np.flatnonzero((ious >= thr).any(axis=1)) if len(gorder) else []:
            best, m = thr, -1
            for g in range(len(gorder)):
                if taken[g] and not g_crowd[g]:
                    continue
                if m > -1 and not g_ign[m] and g_ign[g]:
                    break
                if ious[d, g] < best:
                    continue
                best, m = ious[d, g], g
            if m == -1:
                continue
            taken[m] = True
            matched[t, d] = gorder[m]
            ignored[t, d] = g_ign[m]
    if np.ndim(iou_thr) == 0:
        return order, matched[0], ignored[0]
    return order, matched, ignored


def match_image_center(det_boxes: np.ndarray, det_scores: np.ndarray, gt_boxes: np.ndarray,
                       gt_crowd: np.ndarray) -> tuple:
    """Centre hits of one (image, category), as CAD studies count a mark: greedy by score, one-to-one.

    A detection hits an unmatched, non-crowd ground-truth box whose area (edges included) contains the
    detection's centre; among several such boxes it takes the one it overlaps most (IoU; the first on ties). A
    detection whose centre lies only in a crowd box is ignored, as pycocotools treats crowd matches.

    Returns:
        (order, matched_gt, det_ignored) as :func:`match_image` with one threshold.
    """
    order = np.argsort(-det_scores, kind='mergesort')[:MAX_DETS]
    d = det_boxes[order]
    cx, cy = d[:, 0] + d[:, 2] / 2, d[:, 1] + d[:, 3] / 2
    gx, gy = gt_boxes[:, 0], gt_boxes[:, 1]
    inside = ((cx[:, None] >= gx) & (cx[:, None] <= gx + gt_boxes[:, 2])
              & (cy[:, None] >= gy) & (cy[:, None] <= gy + gt_boxes[:, 3]))
    ious = iou_matrix(d, gt_boxes, np.zeros(len(gt_boxes), bool))
    taken = np.zeros(len(gt_boxes), bool)
    matched = np.full(len(order), -1)
    ignored = np.zeros(len(order), bool)
    for k in np.flatnonzero(inside.any(axis=1)):
        free = inside[k] & ~taken & ~gt_crowd
        if free.any():
            g = int(np.argmax(np.where(free, ious[k], -1.0)))
            taken[g] = True
            matched[k] = g
        elif (inside[k] & gt_crowd).any():
            ignored[k] = True
    return order, matched, ignored


def _rank(d_img: np.ndarray, d_cat: np.ndarray, d_score: np.ndarray, num_images: int) -> tuple:
    """(kept, rank): each detection's rank within its (category, image) by descending score, stable on the input
    order, as evaluateImg's sort; ``kept``: the top ``MAX_DETS`` of each (category, image)."""
    n = len(d_score)
    order = np.lexsort((np.arange(n), -d_score, d_img, d_cat))
    key = _group_key(d_cat[order], d_img[order], num_images)
    starts = np.r_[0, np.flatnonzero(np.diff(key)) + 1] if n else np.zeros(0, np.int64)
    rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n])) if n else np.zeros(0, np.int64)
    rank_of = np.empty(n, np.int64)
    rank_of[order] = rank
    return order[rank < MAX_DETS], rank_of


def _group_gt(anns: List[dict], cat_ids: List[int], img_pos: Dict[int, int]) -> tuple:
    """({group key of (category, image): annotation indices}, {category: number of non-crowd boxes}); the key is
    :func:`_group_key`'s (boxes of images not in ``img_pos`` are counted but in no group: no detection is there)."""
    groups: Dict[int, list] = {}
    num_gt = {c: 0 for c in cat_ids}
    for i, a in enumerate(anns):
        if a['image_id'] in img_pos:
            groups.setdefault(_group_key(a['category_id'], img_pos[a['image_id']], len(img_pos)), []).append(i)
        # pycocotools' _prepare() sets ignore = iscrowd (an 'ignore' key is overwritten).
        if a['category_id'] in num_gt and not a.get('iscrowd', 0):
            num_gt[a['category_id']] += 1
    return groups, num_gt


def _group_key(category, image_pos, num_images: int):
    """One integer per (category, image position); works on arrays alike."""
    return category * (num_images + 1) + image_pos


def _match_groups(anns: List[dict], dets: Detections, kept: np.ndarray, d_key: np.ndarray,
                  groups: Dict[int, list], iou_thrs: Sequence[float], hit: str = 'iou') -> tuple:
    """(hit, ignored, matched annotation index or -1), each [T, detections], matching each (category, image) that
    has ground truth at every threshold (``hit='center'``: one row of centre hits); detections of the others stay
    unmatched false positives without any matching. ``d_key``: each detection's :func:`_group_key`."""
    n, t = len(dets.score), (1 if hit == 'center' else len(iou_thrs))
    hits, ignored, matched_gt = np.zeros((t, n), bool), np.zeros((t, n), bool), np.full((t, n), -1, np.int64)
    in_group: Dict[int, list] = {}
    near = kept[np.isin(d_key[kept], np.fromiter(groups, np.int64, len(groups)))]
    for j, k in zip(near.tolist(), d_key[near].tolist()):
        in_group.setdefault(k, []).append(j)
    for k, d_idx in in_group.items():
        g_idx = np.asarray(groups[k], int)
        d_idx = np.asarray(d_idx, int)
        g_crowd = np.array([bool(anns[i].get('iscrowd', 0)) for i in g_idx], bool)
        g_boxes = np.array([anns[i]['bbox'] for i in g_idx], float).reshape(-1, 4)
        d_boxes, d_score = dets.boxes[d_idx], dets.score[d_idx]
        if hit == 'center':
            o, m, ign = match_image_center(d_boxes, d_score, g_boxes, g_crowd)
            m, ign = m[None], ign[None]
        else:
            o, m, ign = match_image(d_boxes, d_score, g_boxes, g_crowd, g_crowd, list(iou_thrs))
        sel = d_idx[o]
        hits[:, sel] = m >= 0
        ignored[:, sel] = ign
        matched_gt[:, sel] = np.where(m >= 0, g_idx[np.maximum(m, 0)], -1)
    return hits, ignored, matched_gt


def match_sorted(gt: dict, dets: Union[List[dict], Detections], iou_thrs: Sequence[float],
                 hit: str = 'iou') -> Dict[int, dict]:
    """Matches every (image, category) like pycocotools, at several IoU thresholds at once (or by centre hits).

    Detections of an (image, category) without ground truth are false positives without any matching, which
    is most of them on mammograms; only the others go through :func:`match_image`.

    Returns:
        category id -> dict(scores, tp, fp, det_index, gt_index, num_gt): the kept detections over all images,
        in pycocotools' accumulate order (images in id order, top ``MAX_DETS`` per image by score, then a stable
        sort by score); ``tp``, ``fp`` and ``gt_index`` are [T, n] (``hit='center'``: T = 1). A detection matched
        to a crowd box is neither TP nor FP at that threshold, like pycocotools' ``dtIg``. ``det_index`` indexes
        ``dets``, ``gt_index`` ``gt['annotations']`` (-1 when unmatched).
    """
    if hit not in HITS:
        raise ValueError(f'hit must be one of {HITS}, got {hit!r}')
    anns = gt['annotations']
    img_pos = image_positions(gt)
    cat_ids = [c['id'] for c in gt['categories']]
    if not isinstance(dets, Detections):
        dets = detection_columns(gt, dets)
    d_img, d_cat, d_score = dets.image_pos, dets.category_id, dets.score
    kept, rank_of = _rank(d_img, d_cat, d_score, len(img_pos))
    groups, num_gt = _group_gt(anns, cat_ids, img_pos)
    d_key = _group_key(d_cat, d_img, len(img_pos))
    hits, ignored, matched_gt = _match_groups(anns, dets, kept, d_key, groups, iou_thrs, hit)
    out: Dict[int, dict] = {}
    for c in cat_ids:
        idx = kept[d_cat[kept] == c]
        # accumulate(): images in id order, each image's detections by score, then a stable sort by score.
        idx = idx[np.lexsort((rank_of[idx], d_img[idx]))]
        idx = idx[np.argsort(-d_score[idx], kind='mergesort')]
        h, ign = hits[:, idx], ignored[:, idx]
        out[c] = dict(scores=d_score[idx], tp=h & ~ign, fp=~h & ~ign, det_index=idx, gt_index=matched_gt[:, idx],
                      num_gt=num_gt[c])
    return out


def drop_ignored(matches: Dict[int, dict], row: int = 0) -> Dict[int, dict]:
    """One threshold's row of :func:`match_sorted`, the ignored detections left out: per category 1-D ``scores``,
    ``tp``, ``fp``, ``det_index``, ``gt_index`` and ``num_gt``."""
    out = {}
    for c, m in matches.items():
        keep = m['tp'][row] | m['fp'][row]
        out[c] = dict(scores=m['scores'][keep], tp=m['tp'][row][keep], fp=m['fp'][row][keep],
                      det_index=m['det_index'][keep], gt_index=m['gt_index'][row][keep], num_gt=m['num_gt'])
    return out


def match_all(gt: dict, dets: List[dict], iou_thr: float, hit: str = 'iou') -> Dict[int, dict]:
    """:func:`match_sorted` at one threshold, the ignored detections left out (:func:`drop_ignored`)."""
    return drop_ignored(match_sorted(gt, dets, [iou_thr], hit))
