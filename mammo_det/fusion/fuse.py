"""Linking CC and MLO detections of a breast and rescoring them.

A lesion is one object of the breast: compression moves it between the craniocaudal and the mediolateral-oblique
view, but its depth from the nipple along the nipple axis (the line through the nipple perpendicular to the chest
wall: the posterior edge in CC, the pectoral muscle's edge in MLO) changes little. For every detection on a breast
whose two views have landmarks and a pixel spacing, the depth of its box centre is measured in millimetres
(:func:`mammo_det.io.landmarks.nipple_depth`); its partner candidates are the other view's detections of the same
category, each weighted by ``exp(-(depth mismatch / sigma)^2 / 2)`` within a search band (a soft tolerance, not a
window). The best partner is the one with the largest score x weight. A logistic model rescores each detection
from its own score, the best partner's score x weight, and their depth mismatch; it is fit on a validation split
(:func:`fit_fuser`: a detection is positive when it hits a ground-truth box of its category). Detections on
breasts without both views (or without landmarks) pass through unchanged.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Dict, List, NamedTuple

import numpy as np

from mammo_det.errors import UserError

SIGMA_MM = 8.0  # core tolerance of the depth mismatch
BAND_MM = 30.0  # beyond this a detection is no partner at all
FEATURES = ('bias', 'score_logit', 'partner', 'mismatch')
FORMAT = 'mammo-det two-view fuser 1'


class FusionError(UserError, ValueError):
    """The inputs cannot be fused as asked (no image list, no breast with both views, a broken fuser file)."""


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _breasts(gt: dict) -> Dict[tuple, Dict[str, dict]]:
    """(study, laterality) -> {'CC': image, 'MLO': image} of the breasts with both views, landmarks and spacing."""
    from mammo_det.io.landmarks import Landmarks

    views: Dict[tuple, Dict[str, dict]] = {}
    for im in gt['images']:
        lm = im.get('landmarks')
        if not lm or not im.get('pixel_spacing') or im.get('view_position') not in ('CC', 'MLO'):
            continue
        lm = Landmarks.from_dict(lm)
        if lm.nipple is None or lm.chest_wall is None:
            continue
        views.setdefault((im.get('study_id'), im.get('laterality')), {})[im['view_position']] = dict(im, _lm=lm)
    return {k: v for k, v in views.items() if len(v) == 2}


def _depths(dets: List[dict], image: dict) -> np.ndarray:
    from mammo_det.io.landmarks import nipple_depth

    centres = np.array([[d['bbox'][0] + d['bbox'][2] / 2, d['bbox'][1] + d['bbox'][3] / 2] for d in dets],
                       np.float64).reshape(-1, 2)
    return nipple_depth(centres, image['_lm'], image['pixel_spacing'])


class Links(NamedTuple):
    """Per detection: its features (n, 4): 1, logit of the score, the best partner's score x weight, and the best
    partner's depth mismatch over the band (1 without a partner); whether it lies on a breast with both views and
    landmarks; its best partner's index (-1: none); its nipple depth in mm."""
    features: np.ndarray
    eligible: np.ndarray
    partner: np.ndarray
    depth: np.ndarray


def link_features(gt: dict, dets: List[dict], sigma: float = SIGMA_MM, band: float = BAND_MM) -> Links:
    """The :class:`Links` of every detection to the other view of its breast."""
    n = len(dets)
    x = np.zeros((n, len(FEATURES)))
    x[:, 0] = 1.0
    x[:, 1] = _logit([d['score'] for d in dets])
    x[:, 3] = 1.0
    eligible = np.zeros(n, bool)
    partner = np.full(n, -1)
    depth = np.full(n, np.nan)
    by_image: Dict[int, List[int]] = {}
    for i, d in enumerate(dets):
        by_image.setdefault(d['image_id'], []).append(i)
    for views in _breasts(gt).values():
        idx = {v: np.array(by_image.get(im['id'], []), int) for v, im in views.items()}
        for v, im in views.items():
            if len(idx[v]):
                depth[idx[v]] = _depths([dets[i] for i in idx[v]], im)
                eligible[idx[v]] = True
        for a, b in (('CC', 'MLO'), ('MLO', 'CC')):
            ia, ib = idx[a], idx[b]
            if not len(ia) or not len(ib):
                continue
            mismatch = np.abs(depth[ia][:, None] - depth[ib][None, :])
            same = np.array([dets[i]['category_id'] for i in ia])[:, None] == \
                np.array([dets[j]['category_id'] for j in ib])[None, :]
            weight = np.where(same & (mismatch <= band), np.exp(-0.5 * (mismatch / sigma) ** 2), 0.0)
            strength = weight * np.array([dets[j]['score'] for j in ib])[None, :]
            best = strength.argmax(axis=1)
            has = strength[np.arange(len(ia)), best] > 0
            x[ia, 2] = np.where(has, strength[np.arange(len(ia)), best], 0.0)
            x[ia, 3] = np.where(has, mismatch[np.arange(len(ia)), best] / band, 1.0)
            partner[ia] = np.where(has, ib[best], -1)
    return Links(features=x, eligible=eligible, partner=partner, depth=depth)


def _fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1e-2, steps: int = 50) -> np.ndarray:
    """Logistic regression by Newton's method (IRLS) with a small ridge, the bias not penalised."""
    w = np.zeros(x.shape[1])
    penalty = ridge * np.eye(x.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ w))
        grad = x.T @ (p - y) + penalty @ w
        hess = (x * (p * (1 - p))[:, None]).T @ x + penalty + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def fit_fuser(gt: dict, dets: List[dict], match_iou: float = 0.1, sigma: float = SIGMA_MM,
              band: float = BAND_MM) -> dict:
    """Fits the rescoring model on a validation split's ground truth and predictions; returns the fuser (a JSON
    dict: format, features, weights, sigma, band, and what it was fit on)."""
    from mammo_det.evaluation.coco import match_all

    links = link_features(gt, dets, sigma, band)
    x, eligible, partner = links.features, links.eligible, links.partner
    if eligible.sum() < 10:
        raise FusionError(f'only {int(eligible.sum())} detections lie on breasts with both views and landmarks: '
                          'too few to fit (convert with this version to record landmarks and pixel spacing)')
    y = np.zeros(len(dets))
    for m in match_all(gt, dets, match_iou).values():
        y[m['det_index'][m['tp']]] = 1.0
    if len(np.unique(y[eligible])) < 2:
        raise FusionError('the validation detections are all right or all wrong: nothing to fit')
    w = _fit_logistic(x[eligible], y[eligible])
    breasts = len({(im.get('study_id'), im.get('laterality')) for im in gt['images']
                   if im['id'] in {dets[i]['image_id'] for i in np.flatnonzero(eligible)}})
    fuser = dict(format=FORMAT, features=list(FEATURES), weights=[float(v) for v in w], sigma_mm=sigma,
                 band_mm=band, fit=dict(detections=int(eligible.sum()), positives=int(y[eligible].sum()),
                                        breasts=breasts, match_iou=match_iou,
                                        linked=int((partner[eligible] >= 0).sum())))
    fuser['id'] = hashlib.sha1(json.dumps([fuser['weights'], sigma, band]).encode()).hexdigest()[:12]
    return fuser


def load_fuser(path: str) -> dict:
    try:
        with open(path) as fh:
            fuser = json.load(fh)
    except (OSError, ValueError) as exc:
        raise FusionError(f'{path}: cannot read a fuser ({exc})') from None
    if not isinstance(fuser, dict) or fuser.get('format') != FORMAT or len(fuser.get('weights', [])) != len(FEATURES):
        raise FusionError(f"{path}: not a fuser written by 'mammo-det fuse --fit'")
    return fuser


def fuse_predictions(gt: dict, dets: List[dict], fuser: dict) -> tuple:
    """(the detections rescored, in the same format: ``score`` the fused score, ``score_single`` the detector's,
    ``fusion`` the partner's score x weight and depth mismatch; statistics). Detections not on a breast with both
    views keep their score."""
    start = time.time()
    links = link_features(gt, dets, fuser['sigma_mm'], fuser['band_mm'])
    x, eligible, partner, depth = links.features, links.eligible, links.partner, links.depth
    fused = 1 / (1 + np.exp(-x @ np.asarray(fuser['weights'])))
    out = []
    for i, d in enumerate(dets):
        if not eligible[i]:
            out.append(dict(d))
            continue
        e = dict(d, score=float(fused[i]), score_single=float(d['score']),
                 fusion=dict(fuser=fuser.get('id'), partner_strength=float(x[i, 2]),
                             depth_mm=None if np.isnan(depth[i]) else round(float(depth[i]), 2),
                             mismatch_mm=round(float(x[i, 3] * fuser['band_mm']), 2) if partner[i] >= 0 else None))
        out.append(e)
    stats = dict(rescored=int(eligible.sum()), linked=int((partner[eligible] >= 0).sum()),
                 breasts=len(_breasts(gt)), seconds=time.time() - start)
    return out, stats
