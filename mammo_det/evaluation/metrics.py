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

from .coco import HITS, ap_from_precision, coco_precision, drop_ignored, match_sorted

FPPI_POINTS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)
HEADLINE_FPPI = 0.5  # the FROC point that tables, plots and the leaderboard single out
# pycocotools' IoU thresholds, computed the same way
COCO_IOU_THRS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
IMAGE_SETS = ('all', 'positive')
# subgroup key -> the image field (as the converter writes it)
SUBGROUP_FIELDS = dict(density='breast_density', view='view_position', laterality='laterality',
                       vendor='manufacturer')


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


def _birads_metrics(gt: dict, dets: List[dict], matches: Dict[int, dict], backend: str) -> tuple:
    """(metrics or None, (image id, prediction right) of each matched box with a known BI-RADS, for the bootstrap)."""
    if not any('birads_scores' in d for d in dets):
        return None, None
    anns = gt['annotations']
    confusion = np.zeros((3, 3), int)  # rows: true 3/4/5, columns: predicted
    boxes = []
    for m in matches.values():
        for di, gi in zip(m['det_index'][m['tp']], m['gt_index'][m['tp']]):
            true = anns[gi].get('birads')
            p = dets[di].get('birads_scores')
            if true not in BIRADS_VALUES or p is None:
                continue
            confusion[birads_class(true), int(np.argmax(p))] += 1
            boxes.append((anns[gi]['image_id'], birads_class(true) == int(np.argmax(p))))
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
    table = (np.array([b[0] for b in boxes]), np.array([b[1] for b in boxes], bool)) if boxes else None
    return out, table


def _breast_metrics(gt: dict, dets: List[dict]) -> tuple:
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
               'auc_birads_ge4': _auc(scores, birads >= 4), 'auc_birads_ge3': _auc(scores, birads >= 3)}
    return metrics, ([k[0] for k in breasts], scores, birads)


def ap_key(iou: float) -> str:
    """The key of AP at one IoU threshold: 0.1 -> 'AP10', 0.25 -> 'AP25'."""
    return f'AP{iou * 100:g}'


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


def _restrict(gt: dict, dets: List[dict], ids: set) -> tuple:
    return (dict(gt, images=[im for im in gt['images'] if im['id'] in ids],
                 annotations=[a for a in gt['annotations'] if a['image_id'] in ids]),
            [d for d in dets if d['image_id'] in ids])


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


def _point(gt: dict, dets: List[dict], protocol: dict, backend: str, fppi_points: Sequence[float], curves: bool,
           keep_matches: bool = False) -> tuple:
    """(the point metrics, what the bootstrap needs or None)."""
    cats = sorted(gt['categories'], key=lambda c: c['id'])
    extra = protocol['iou_thrs']
    per_cat: Dict[str, dict] = {}
    precision = extra_prec = None
    if dets:
        precision, params = coco_precision(gt, dets, backend=backend)
        cat_index = {cid: k for k, cid in enumerate(params.catIds)}
        if extra:
            extra_prec, _ = coco_precision(gt, dets, iou_thrs=extra, backend=backend)
    coco_sorted = None
    if keep_matches and protocol['hit'] == 'iou':  # one matching pass for the AP thresholds and the FROC one
        rows = match_sorted(gt, dets, list(COCO_IOU_THRS) + list(extra) + [protocol['froc_iou']])
        coco_sorted = {c: dict(m, tp=m['tp'][:-1], fp=m['fp'][:-1], gt_index=m['gt_index'][:-1])
                       for c, m in rows.items()}
        froc_sorted = {c: dict(m, tp=m['tp'][-1:], fp=m['fp'][-1:], gt_index=m['gt_index'][-1:])
                       for c, m in rows.items()}
    else:
        froc_sorted = match_sorted(gt, dets, [protocol['froc_iou']], protocol['hit'])
    matches = drop_ignored(froc_sorted)
    num_gt = {c: m['num_gt'] for c, m in matches.items()}
    n_img = len(gt['images'])
    curve_data, ops, by_birads = {}, {}, {}
    for c in cats:
        k = cat_index.get(c['id']) if precision is not None else None
        aps = {}
        if num_gt[c['id']] == 0:
            aps = dict.fromkeys(['AP', 'AP50', 'AP75'] + [ap_key(t) for t in extra])
        elif k is None:
            aps = dict.fromkeys(['AP', 'AP50', 'AP75'] + [ap_key(t) for t in extra], 0.0)
        else:
            aps = dict(AP=ap_from_precision(precision[:, :, k]), AP50=ap_from_precision(precision[0, :, k]),
                       AP75=ap_from_precision(precision[5, :, k]))
            aps.update({ap_key(t): ap_from_precision(extra_prec[i, :, k]) for i, t in enumerate(extra)})
        m = matches[c['id']]
        rec, fppi, at = recall_at_fppi(m['tp'], m['fp'], num_gt[c['id']], n_img, fppi_points)
        per_cat[c['name']] = dict(aps, num_gt=num_gt[c['id']], recall_at_fppi=at)
        ops[c['name']] = operating_points(m, n_img, fppi_points)
        by_birads[c['name']] = recall_by_birads(m, gt['annotations'], c['id'], n_img, fppi_points)
        if curves:
            pr = precision[0, :, k] if k is not None else np.zeros(101)
            curve_data[c['name']] = dict(froc_recall=rec, froc_fppi=fppi, pr_precision=pr,
                                         pr_recall=np.linspace(0, 1, 101))

    def mean(key: str) -> float:
        vals = [v[key] for v in per_cat.values() if v[key] is not None]
        return float(np.mean(vals)) if vals else 0.0

    birads, birads_table = _birads_metrics(gt, dets, matches, backend)
    breast, breast_table = _breast_metrics(gt, dets)
    result = dict(mAP=mean('AP'), mAP50=mean('AP50'), mAP75=mean('AP75'),
                  **{'m' + ap_key(t): mean(ap_key(t)) for t in extra}, froc_iou=protocol['froc_iou'],
                  protocol=dict(protocol), num_images=n_img, num_detections=len(dets), per_category=per_cat,
                  birads=birads, breast=breast, operating_points=ops, recall_by_birads=by_birads)
    if curves:
        result['_curves'] = curve_data
    data = None
    if keep_matches:
        from .bootstrap import BootstrapData

        if coco_sorted is None:  # centre hits: the AP thresholds need their own IoU matching
            coco_sorted = match_sorted(gt, dets, list(COCO_IOU_THRS) + list(extra))
        data = BootstrapData(gt, dets, coco_sorted, ['coco'] + [ap_key(t) for t in extra], froc_sorted,
                             fppi_points, breast_table, birads_table)
    return result, data


def _ci_block(samples: Dict[tuple, np.ndarray], n: int, level: float, seed: int) -> dict:
    from .bootstrap import interval, nest

    block = dict(n=n, level=level, unit='study', seed=seed)
    block.update(nest({path: interval(v, level) for path, v in samples.items()}))
    return block


def evaluate(gt: dict, dets: List[dict], froc_iou: float = 0.5, backend: str = 'faster',
             fppi_points: Sequence[float] = FPPI_POINTS, curves: bool = False, *, iou_thrs: Sequence[float] = (),
             hit: str = 'iou', images: str = 'all', by: Sequence[str] = (), bootstrap: int = 0, ci: float = 0.95,
             seed: int = 0) -> dict:
    """Every number of ``shared/METRICS.md`` for one set of detections.

    Args:
        gt: COCO ground truth (validated by :func:`validate_gt`).
        dets: detections (validated by :func:`validate_detections`).
        froc_iou: IoU at which FROC, operating points and BI-RADS matching count a hit.
        backend: COCO backend, ``'faster'`` or ``'pycocotools'`` (identical numbers).
        curves: also return the PR and FROC curves under ``'_curves'`` (for plots; not JSON-worthy).
        iou_thrs: extra single-threshold APs (``AP10`` for 0.1 ...), pycocotools' procedure at that threshold.
        hit: ``'iou'`` (IoU >= froc_iou) or ``'center'`` (the detection's centre inside the box) for FROC.
        images: ``'all'`` or ``'positive'`` (only images with a ground-truth box; FPPI over them).
        by: subgroup keys (density, view, laterality, vendor): every metric again on each subgroup's images.
        bootstrap: number of study resamples for percentile intervals at level ``ci`` (0: none), seeded.
    """
    validate_gt(gt)
    protocol = check_protocol(froc_iou, hit, images, iou_thrs)
    if bootstrap < 0 or not 0 < ci < 1:
        raise EvaluationInputError(f'--bootstrap {bootstrap} / --ci {ci}: need N >= 0 and 0 < level < 1')
    gt, dets = select_images(gt, dets, images)
    groups = {key: subgroups(gt, key) for key in by}
    result, data = _point(gt, dets, protocol, backend, fppi_points, curves, keep_matches=bootstrap > 0)
    if bootstrap:
        from .bootstrap import study_weights

        samples = data.samples(study_weights(len(data.units), bootstrap, seed))
        result['ci'] = _ci_block(samples, bootstrap, ci, seed)
    if groups:
        result['subgroups'] = {
            key: {value: evaluate(*_restrict(gt, dets, ids), backend=backend, fppi_points=fppi_points,
                                  bootstrap=bootstrap, ci=ci, seed=seed, **protocol)
                  for value, ids in values.items()}
            for key, values in groups.items()}
    return result


def compare(gt: dict, preds: Sequence[List[dict]], names: Sequence[str], bootstrap: int = 1000, ci: float = 0.95,
            seed: int = 0, backend: str = 'faster', fppi_points: Sequence[float] = FPPI_POINTS, *,
            froc_iou: float = 0.5, iou_thrs: Sequence[float] = (), hit: str = 'iou', images: str = 'all') -> dict:
    """Paired comparison on the same study resamples; the first model is the reference.

    Returns:
        dict(reference, protocol, models={name: metrics}, differences={name: {mAP: {delta, ci, p}, ...,
        per_category: {category: {AP: ..., AP50: ..., recall_at_fppi: {f: ...}}}}}) for every other model.
    """
    from .bootstrap import difference, study_weights

    validate_gt(gt)
    if len(preds) != len(names) or len(preds) < 2 or len(set(names)) != len(names):
        raise EvaluationInputError(f'compare needs two or more models with distinct names, got {list(names)}')
    protocol = check_protocol(froc_iou, hit, images, iou_thrs)
    models, samples, weights = {}, {}, None
    for name, dets in zip(names, preds):
        sel_gt, sel_dets = select_images(gt, dets, images)
        m, data = _point(sel_gt, sel_dets, protocol, backend, fppi_points, curves=False, keep_matches=bootstrap > 0)
        if bootstrap:
            weights = study_weights(len(data.units), bootstrap, seed) if weights is None else weights
            samples[name] = data.samples(weights)
            m['ci'] = _ci_block(samples[name], bootstrap, ci, seed)
        models[name] = m
    ref = names[0]
    keys = ['AP', 'AP50', 'AP75'] + [ap_key(t) for t in protocol['iou_thrs']]
    diffs = {}
    for name in names[1:]:
        def entry(path, a, r, name=name):
            out = dict(delta=None if a is None or r is None else a - r)
            if bootstrap:
                out.update(difference(samples[name][path], samples[ref][path], ci))
            return out

        d = {'m' + k: entry(('m' + k,), models[name]['m' + k], models[ref]['m' + k]) for k in keys}
        d['per_category'] = {}
        for cat, v in models[name]['per_category'].items():
            rv = models[ref]['per_category'][cat]
            c = {k: entry(('per_category', cat, k), v[k], rv[k]) for k in keys}
            c['recall_at_fppi'] = {f: entry(('per_category', cat, 'recall_at_fppi', f), r, rv['recall_at_fppi'][f])
                                   for f, r in v['recall_at_fppi'].items()}
            d['per_category'][cat] = c
        diffs[name] = d
    return dict(reference=ref, protocol=protocol, bootstrap=dict(n=bootstrap, level=ci, unit='study', seed=seed),
                models=models, differences=diffs)


def with_interval(value, bounds, digits: int = 3) -> str:
    """'0.612 [0.551, 0.668]' (or the value alone without an interval)."""
    from mammo_det.tables import fmt

    if bounds is None:
        return fmt(value, digits)
    return f'{fmt(value, digits)} [{fmt(bounds[0], digits)}, {fmt(bounds[1], digits)}]'


def _ap_keys(metrics: dict) -> List[str]:
    return ['AP', 'AP50', 'AP75'] + [ap_key(t) for t in (metrics.get('protocol') or {}).get('iou_thrs', [])]


def per_category_rows(metrics: dict, intervals: str = 'columns', digits: int = 3) -> List[dict]:
    """One flat row per category, then the mean row.

    Args:
        intervals: where ``metrics`` has bootstrap intervals: ``'columns'`` adds ``<col>_lo``/``<col>_hi``
            columns (the CSV), ``'text'`` writes cells as "0.612 [0.551, 0.668]" (printed tables).
    """
    ci = metrics.get('ci') or {}
    ci_cat = ci.get('per_category', {})
    keys = _ap_keys(metrics)
    rows = []

    def put(row, col, value, bounds):
        if not ci or intervals not in ('columns', 'text'):
            row[col] = value
        elif intervals == 'text':
            row[col] = with_interval(value, bounds, digits)
        else:
            row[col] = value
            row[f'{col}_lo'], row[f'{col}_hi'] = bounds if bounds else (None, None)

    for name, v in metrics['per_category'].items():
        c = ci_cat.get(name, {})
        row = dict(category=name, num_gt=v['num_gt'])
        for k in keys:
            put(row, k, v[k], c.get(k))
        for f, r in v['recall_at_fppi'].items():
            put(row, f'R@{f}FPPI', r, c.get('recall_at_fppi', {}).get(f))
        rows.append(row)
    mean = dict(category='mean', num_gt=sum(v['num_gt'] for v in metrics['per_category'].values()))
    for k in keys:
        put(mean, k, metrics['m' + k], ci.get('m' + k))
    return rows + [mean]


def format_table(metrics: dict) -> str:
    """The per-category table as fixed-width text (what the CLI prints and the MMEngine logger shows), with
    intervals where the metrics have them, then BI-RADS, breast level and subgroups."""
    from mammo_det.tables import format_rows

    ci = metrics.get('ci') or {}
    rows = per_category_rows(metrics, intervals='text', digits=4)
    out = []
    if ci:
        out.append(f"{ci['level']:.0%} intervals over {ci['n']} study resamples (seed {ci['seed']})")
    out.append(format_rows(rows, digits=4, style='text'))
    b = metrics.get('birads')
    if b and b.get('accuracy') is not None:
        acc = with_interval(b['accuracy'], ci.get('birads', {}).get('accuracy'), 4)
        out.append(f"BI-RADS on {b['matched']} matched boxes: accuracy {acc} "
                   f"(majority baseline {b['majority_baseline']:.4f}); suspicious (4-5) AP {b['suspicious_AP']}")
    br = metrics.get('breast')
    if br:
        bci = ci.get('breast', {})
        out.append(f"breast level ({br['num_breasts']} breasts): AUC BI-RADS>=4 "
                   f"{with_interval(br['auc_birads_ge4'], bci.get('auc_birads_ge4'), 4)}, "
                   f">=3 {with_interval(br['auc_birads_ge3'], bci.get('auc_birads_ge3'), 4)}")
    if metrics.get('subgroups'):
        out += ['', format_rows(subgroup_rows(metrics, intervals='text'), digits=4, style='text')]
    p = metrics.get('protocol')
    if p:
        out.append(f"protocol: images {p['images']}, FROC hit {p['hit']}"
                   + (f" (IoU >= {p['froc_iou']})" if p['hit'] == 'iou' else '')
                   + (f", extra AP at IoU {', '.join(f'{t:g}' for t in p['iou_thrs'])}" if p['iou_thrs'] else ''))
    return '\n'.join(out)


def subgroup_rows(metrics: dict, intervals: str = 'columns') -> List[dict]:
    """One row per (subgroup key, value): images, mAP, mAP50 and each category's AP and headline recall."""
    rows = []
    head = fppi_key(HEADLINE_FPPI)
    for key, values in (metrics.get('subgroups') or {}).items():
        for value, m in values.items():
            ci = m.get('ci') or {}
            row = dict(subgroup=key, value=value, num_images=m['num_images'])
            for k in ('mAP', 'mAP50'):
                row[k] = with_interval(m[k], ci.get(k), 4) if intervals == 'text' else m[k]
            for name, v in m['per_category'].items():
                if metrics['per_category'][name]['num_gt']:
                    row[f'{name} AP'] = v['AP']
                    row[f'{name} R@{head}'] = v['recall_at_fppi'][head] if v['num_gt'] else None
            rows.append(row)
    return rows
