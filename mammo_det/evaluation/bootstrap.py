"""Bootstrap over studies without re-running COCOeval: matching is done once, a resample only re-weights.

A resample draws the evaluated set's studies with replacement; a study drawn ``w`` times brings each of its images,
boxes and detections ``w`` times. Every metric is then a function of per-study weights:

- AP: pycocotools' precision at a recall threshold is the largest precision over the entries whose recall reaches
  it, and along the score-sorted detections that maximum is always taken at a true positive (a false positive has
  the recall of the true positive before it and a lower precision). So a resample needs, at each true positive,
  only the weighted number of true positives up to it and of false positives before it: the first is a cumulative
  sum of the true positives' study weights, the second a cumulative sum of the false positives' weights between
  consecutive true positives (a product with a study x true-positive count table where that table is small). A
  copy of a detection sits next to its original in the sorted list (equal scores), and the later copy dominates
  the earlier, so a weight is one step of ``w``.
- Recall at FPPI: the weighted true positives at the last true positive whose weighted false positives, over the
  weighted number of images, are at most the FPPI point.
- Breast AUC and BI-RADS accuracy: weighted counts; the BI-RADS 4-5 AP is an AP of its own one-category set.

With every weight 1 this is the point evaluation, to the last bit where the arithmetic is the same (AP,
recall); ``tests/test_evaluation/test_bootstrap.py`` also checks a resample against pycocotools run on the
explicitly duplicated data.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from .coco import Detections, image_positions
from .keys import COCO_IOU_THRS, IOU50, IOU75, RECALL_THRS, fppi_key
from .lesion import lesion_events

CHUNK_ELEMENTS = 1 << 24  # resamples are processed in chunks holding at most this many values per table


def resampling_units(images: Sequence[dict]) -> tuple:
    """(unit index of each image, in the order given; unit keys, sorted): the study, or the image itself when it
    has no ``study_id``. Sorted keys make the resamples of a seed depend only on the set of studies."""
    keys = [('study', str(im['study_id'])) if im.get('study_id') is not None else ('image', str(im['id']))
            for im in images]
    units = sorted(set(keys))
    pos = {k: i for i, k in enumerate(units)}
    return np.array([pos[k] for k in keys], np.int64), units


def study_weights(num_units: int, n: int, seed: int) -> np.ndarray:
    """[n, num_units] draw counts: each row draws ``num_units`` units uniformly with replacement."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, num_units), np.float64)
    step = max(1, CHUNK_ELEMENTS // max(num_units, 1))
    for a in range(0, n, step):
        b = min(n, a + step)
        draws = rng.integers(0, num_units, size=(b - a, num_units))
        flat = (draws + num_units * np.arange(b - a)[:, None]).ravel()
        out[a:b] = np.bincount(flat, minlength=(b - a) * num_units).reshape(b - a, num_units)
    return out


def sum_by_group(weights: np.ndarray, unit: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """[B, n_groups]: per resample, the summed weights of the items of each group (``unit`` and ``group`` per
    item). Dense (a study x group count table times the weights: BLAS, the fast way) while that table is at most
    8 times the number of items; else gathered per item and summed by group, so that on large sets memory stays in
    proportion to the data."""
    s = weights.shape[1]
    if s * n_groups <= 8 * max(len(unit), 1):
        # bincount, not np.add.at: the table is rebuilt per resample chunk, and add.at took 40% of a comparison
        counts = np.bincount(unit * n_groups + group, minlength=s * n_groups).reshape(s, n_groups)
        return weights @ counts.astype(np.float64)
    out = np.zeros((weights.shape[0], n_groups))
    if len(unit):
        order = np.argsort(group, kind='stable')
        g = group[order]
        starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
        out[:, g[starts]] = np.add.reduceat(weights[:, unit[order]], starts, axis=1)
    return out


def _weighted_tp_fp(weights: np.ndarray, tp: np.ndarray, fp: np.ndarray, unit: np.ndarray) -> tuple:
    """(weighted true positives up to each true positive, weighted false positives before it), both [B, K], for
    entries in score order (``tp``/``fp`` both False for an ignored entry)."""
    pos = np.flatnonzero(tp)
    ctp = np.cumsum(weights[:, unit[pos]], axis=1)
    fpos = np.flatnonzero(fp)
    seg = np.searchsorted(pos, fpos)  # the false positive comes before true positives seg, seg + 1, ...
    keep = seg < len(pos)
    cfp = np.cumsum(sum_by_group(weights, unit[fpos[keep]], seg[keep], len(pos)), axis=1)
    return ctp, cfp


def _ap(ctp: np.ndarray, cfp: np.ndarray, npig: np.ndarray) -> np.ndarray:
    """pycocotools' 101-point AP of each resample; NaN where the resample holds no ground truth."""
    b_n = len(npig)
    out = np.full(b_n, np.nan)
    has = npig > 0
    if not has.any():
        return out
    out[has] = 0.0
    k = ctp.shape[1]
    if k == 0:
        return out
    pr = ctp / (ctp + cfp + np.spacing(1))
    pr_max = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    n = np.where(has, npig, 1.0)[:, None]
    # need[b, r]: the least count c with c / npig >= r, compared in floats exactly as pycocotools compares rc.
    need = np.maximum(np.floor(RECALL_THRS * n) - 1, 0)
    for _ in range(4):
        need = np.where(need / n >= RECALL_THRS, need, need + 1)
    # First true positive reaching the count, all resamples in one search: rows offset past each other.
    step = float(max(npig.max(), ctp.max()) + 2)
    off = step * np.arange(b_n)[:, None]
    first = np.searchsorted((ctp + off).ravel(), (need + off).ravel()).reshape(b_n, -1) - k * np.arange(b_n)[:, None]
    found = first < k
    vals = np.where(found, np.take_along_axis(pr_max, np.minimum(first, k - 1), axis=1), 0.0)
    out[has] = vals[has].mean(axis=1)
    return out


def _recall_at(ctp: np.ndarray, cfp: np.ndarray, npig: np.ndarray, num_images: np.ndarray,
               points: Sequence[float]) -> List[np.ndarray]:
    """Recall at each FPPI point per resample (NaN without ground truth), as :func:`froc.recall_at_fppi`."""
    has = npig > 0
    fppi = cfp / np.maximum(num_images, 1)[:, None]
    out = []
    for f in points:
        cnt = (fppi <= f).sum(axis=1)
        if ctp.shape[1]:
            got = np.take_along_axis(ctp, np.maximum(cnt - 1, 0)[:, None], axis=1)[:, 0]
            rec = np.where(cnt > 0, got / np.where(has, npig, 1.0), 0.0)
        else:
            rec = np.zeros(len(npig))
        out.append(np.where(has, rec, np.nan))
    return out


def _weighted_auc(weights: np.ndarray, unit: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC of each resample (ties counted half, as the Mann-Whitney statistic); NaN with one class only."""
    levels, level = np.unique(scores, return_inverse=True)
    wp = sum_by_group(weights, unit[labels], level[labels], len(levels))
    wn = sum_by_group(weights, unit[~labels], level[~labels], len(levels))
    below = np.cumsum(wn, axis=1) - wn
    num = (wp * (below + 0.5 * wn)).sum(axis=1)
    den = wp.sum(axis=1) * wn.sum(axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


class BootstrapData:
    """What a resample needs, prepared once from one evaluation's matches (see :func:`evaluate.evaluate`)."""

    def __init__(self, gt: dict, dets: List[dict], *, coco_matches: Dict[int, dict], extra_keys: Sequence[str],
                 froc_matches: Dict[int, dict], fppi_points: Sequence[float], breast: Optional[tuple],
                 birads: Optional[dict], lesion_keys: Optional[List[tuple]] = None):
        """
        Args:
            coco_matches: :func:`coco.match_sorted` at the AP thresholds: the rows of ``COCO_IOU_THRS``, then one
                per extra single-threshold AP (``extra_keys``, such as 'AP10').
            froc_matches: :func:`coco.match_sorted` under the FROC protocol (one row).
            breast: (study id, score, breast BI-RADS) of each breast, or None.
            birads: :func:`birads.birads_metrics`' table (matched boxes, and the BI-RADS 4-5 set), or None.
            lesion_keys: per annotation its lesion (:func:`lesion.lesion_keys`), for the lesion-level FROC; None
                without one.
        """
        self.img_unit, self.units = resampling_units(gt['images'])
        img_pos = {im['id']: k for k, im in enumerate(gt['images'])}
        self.cats = {c['id']: c['name'] for c in sorted(gt['categories'], key=lambda c: c['id'])}
        det_unit = np.array([self.img_unit[img_pos[d['image_id']]] for d in dets], np.int64)
        s = len(self.units)
        self.gt_count = {c: np.zeros(s) for c in self.cats}
        for a in gt['annotations']:  # non-crowd boxes per study and category (pycocotools' npig)
            if a['category_id'] in self.gt_count and not a.get('iscrowd', 0):
                self.gt_count[a['category_id']][self.img_unit[img_pos[a['image_id']]]] += 1
        self.images_per_unit = np.bincount(self.img_unit, minlength=s).astype(np.float64)
        self.coco = {c: (m['tp'], m['fp'], det_unit[m['det_index']]) for c, m in coco_matches.items()}
        self.froc = {c: (m['tp'][0], m['fp'][0], det_unit[m['det_index']]) for c, m in froc_matches.items()}
        self.extra_keys = list(extra_keys)
        self.fppi_points = list(fppi_points)
        self.breast = self.birads = None
        if breast is not None:
            unit_of = {k[1]: i for i, k in enumerate(self.units) if k[0] == 'study'}
            self.breast = (np.array([unit_of[str(sid)] for sid in breast[0]], np.int64), breast[1], breast[2])
        self.suspicious = None
        if birads is not None and birads['boxes'] is not None:
            ids, correct = birads['boxes']
            self.birads = (self.img_unit[[img_pos[i] for i in ids]], correct)
        if birads is not None and birads['suspicious'][0]['annotations']:
            self.suspicious = self._suspicious_table(*birads['suspicious'], img_pos)
        self.lesions = self._lesion_table(gt, froc_matches, lesion_keys, img_pos) if lesion_keys else None

    def _lesion_table(self, gt: dict, froc_matches: Dict[int, dict], keys: List[tuple], img_pos: dict) -> dict:
        """Per category: (first-hit events along its FROC matches, lesions per unit)."""
        out = {}
        for c in self.cats:
            m = froc_matches[c]
            first = lesion_events(dict(tp=m['tp'][0], gt_index=m['gt_index'][0]), keys)
            lesions = {}
            for i, a in enumerate(gt['annotations']):
                if a['category_id'] == c and not a.get('iscrowd', 0):
                    lesions.setdefault(keys[i], a['image_id'])
            count = np.zeros(len(self.units))
            np.add.at(count, [self.img_unit[img_pos[i]] for i in lesions.values()], 1)
            out[c] = (first, count)
        return out

    def _suspicious_table(self, s_gt: dict, s_columns: Detections, m: dict, img_pos: dict) -> tuple:
        """(tp [T, n], fp [T, n], unit [n], ground truth per unit) of the BI-RADS 4-5 set (its
        :class:`coco.Detections`) from its matches ``m`` at the COCO thresholds."""
        unit_of_pos = self.img_unit[np.array([img_pos[i] for i in image_positions(s_gt)], np.int64)]
        unit = unit_of_pos[s_columns.image_pos[m['det_index']]]
        count = np.zeros(len(self.units))
        np.add.at(count, [self.img_unit[img_pos[a['image_id']]] for a in s_gt['annotations']], 1)
        return m['tp'], m['fp'], unit.reshape(-1), count

    def samples(self, weights: np.ndarray) -> Dict[tuple, np.ndarray]:
        """Metric path -> value per resample (rows of ``weights``, [B, units]); chunked to bound memory."""
        largest = max([len(self.units)] + [m[0].shape[-1] for m in self.coco.values()]
                      + ([len(self.breast[0])] if self.breast is not None else [])
                      + ([self.suspicious[0].shape[-1]] if self.suspicious is not None else []))
        step = max(1, CHUNK_ELEMENTS // largest)
        parts = [self._samples(weights[a:a + step]) for a in range(0, len(weights), step)]
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        # Means over categories with ground truth in the resample (pycocotools' rule, per resample).
        for key in ['AP', 'AP50', 'AP75'] + self.extra_keys:
            stack = np.stack([out[('per_category', n, key)] for n in self.cats.values()])
            valid = ~np.isnan(stack)
            with np.errstate(invalid='ignore'):
                out[('m' + key,)] = np.where(valid.any(0), np.nansum(stack, 0) / np.maximum(valid.sum(0), 1), np.nan)
        return out

    def _samples(self, w: np.ndarray) -> Dict[tuple, np.ndarray]:
        out: Dict[tuple, np.ndarray] = {}
        n_img = w @ self.images_per_unit
        for c, name in self.cats.items():
            npig = w @ self.gt_count[c]
            tp, fp, unit = self.coco[c]
            per_thr = [_ap(*_weighted_tp_fp(w, tp[t], fp[t], unit), npig) for t in range(len(tp))]
            n_coco = len(COCO_IOU_THRS)
            out[('per_category', name, 'AP')] = np.mean(per_thr[:n_coco], axis=0)
            out[('per_category', name, 'AP50')] = per_thr[IOU50]
            out[('per_category', name, 'AP75')] = per_thr[IOU75]
            for t, key in enumerate(self.extra_keys, n_coco):
                out[('per_category', name, key)] = per_thr[t]
            tp, fp, unit = self.froc[c]
            ctp, cfp = _weighted_tp_fp(w, tp, fp, unit)
            for f, rec in zip(self.fppi_points, _recall_at(ctp, cfp, npig, n_img, self.fppi_points)):
                out[('per_category', name, 'recall_at_fppi', fppi_key(f))] = rec
            if self.lesions is not None:
                first, count = self.lesions[c]
                ctp, cfp = _weighted_tp_fp(w, first, fp, unit)
                for f, rec in zip(self.fppi_points, _recall_at(ctp, cfp, w @ count, n_img, self.fppi_points)):
                    out[('lesion_level', name, 'recall_at_fppi', fppi_key(f))] = rec
        if self.breast is not None:
            unit, scores, birads = self.breast
            for t in (4, 3):
                out[('breast', f'auc_birads_ge{t}')] = _weighted_auc(w, unit, scores, birads >= t)
        if self.birads is not None:
            unit, correct = self.birads
            total = w[:, unit].sum(axis=1)
            right = w[:, unit[correct]].sum(axis=1)
            out[('birads', 'accuracy')] = np.where(total > 0, right / np.where(total > 0, total, 1), np.nan)
        if self.suspicious is not None:
            tp, fp, unit, count = self.suspicious
            per_thr = [_ap(*_weighted_tp_fp(w, tp[t], fp[t], unit), w @ count) for t in range(len(tp))]
            out[('birads', 'suspicious_AP')] = np.mean(per_thr, axis=0)
            out[('birads', 'suspicious_AP50')] = per_thr[IOU50]
        return out


def interval(values: np.ndarray, level: float) -> Optional[List[float]]:
    """Percentile interval of the defined (non-NaN) values; None when none is defined."""
    v = values[~np.isnan(values)]
    if not len(v):
        return None
    lo, hi = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def difference(model: np.ndarray, reference: np.ndarray, level: float) -> dict:
    """Paired difference over the same resamples: interval and two-sided p = min(1, 2 min(P(d<=0), P(d>=0)))."""
    d = model - reference
    d = d[~np.isnan(d)]
    if not len(d):
        return dict(ci=None, p=None)
    p = min(1.0, 2 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0))))
    return dict(ci=interval(d, level), p=p)


def nest(flat: Dict[tuple, object]) -> dict:
    """{('per_category', 'mass', 'AP'): x} -> {'per_category': {'mass': {'AP': x}}}."""
    out: dict = {}
    for path, v in flat.items():
        d = out
        for k in path[:-1]:
            d = d.setdefault(k, {})
        d[path[-1]] = v
    return out


def ci_block(samples: Dict[tuple, np.ndarray], n: int, level: float, seed: int) -> dict:
    """The ``ci`` block of ``metrics.json``: resampling settings and each metric's interval, nested as the
    metrics themselves."""
    block = dict(n=n, level=level, unit='study', seed=seed)
    block.update(nest({path: interval(v, level) for path, v in samples.items()}))
    return block
