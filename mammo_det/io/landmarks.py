"""Breast landmarks of one view, without training (numpy + OpenCV): the breast contour, the chest-wall line and the
nipple, in the image's pixels; and the nipple distance of a point in millimetres.

* Breast: Otsu threshold of the smoothed image, the largest component, holes filled; its outer contour.
* Chest wall: the image side the breast touches (where most of its border rows lie). CC: the posterior image edge
  (a vertical line along the rows the breast covers there). MLO: the pectoral muscle's edge, the bright wedge in the
  upper posterior corner. Candidates come from a probabilistic Hough transform of the Canny edges of the contrast-
  equalised (CLAHE) corner; each is scored by its length and the brightness step across it (muscle brighter than
  the breast beside it), and must run from the image's top edge to its chest-wall edge at a plausible angle.
* Nipple: the skin-line point (a contour point off the image border) farthest from the chest-wall line.

A landmark that is not found is None, with the reason in ``reasons``; nothing is guessed. Work is done on a copy of
at most ``WORK_SIZE`` pixels a side; coordinates come back in the input's pixels.

The distance that carries over between views (the "straight strip"): a point's depth from the nipple along the
nipple axis (the line through the nipple perpendicular to the chest wall), ``nipple_depth`` in millimetres.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

WORK_SIZE = 512
Point = Tuple[float, float]


@dataclass
class Landmarks:
    """Landmarks of one image in its pixels (x right, y down)."""
    chest_wall_side: Optional[str]  # 'left' or 'right' edge of the image
    contour: Optional[List[Point]]  # the breast's outline, simplified
    chest_wall: Optional[Tuple[Point, Point]]  # two points of the chest-wall line
    nipple: Optional[Point]
    reasons: Dict[str, str] = field(default_factory=dict)  # landmark -> why it is None

    def to_dict(self) -> dict:
        rnd = lambda p: [round(float(p[0]), 2), round(float(p[1]), 2)]  # noqa: E731
        return dict(chest_wall_side=self.chest_wall_side,
                    contour=[rnd(p) for p in self.contour] if self.contour is not None else None,
                    chest_wall=[rnd(p) for p in self.chest_wall] if self.chest_wall is not None else None,
                    nipple=rnd(self.nipple) if self.nipple is not None else None, reasons=dict(self.reasons))

    @classmethod
    def from_dict(cls, d: dict) -> 'Landmarks':
        tup = lambda p: (float(p[0]), float(p[1]))  # noqa: E731
        return cls(d.get('chest_wall_side'), [tup(p) for p in d['contour']] if d.get('contour') else None,
                   tuple(tup(p) for p in d['chest_wall']) if d.get('chest_wall') else None,
                   tup(d['nipple']) if d.get('nipple') else None, dict(d.get('reasons') or {}))

    def mapped(self, fn) -> 'Landmarks':
        """The same landmarks with every point passed through ``fn(points (N, 2)) -> (N, 2)``."""
        def pts(p):
            return [tuple(map(float, q)) for q in fn(np.asarray(p, np.float64).reshape(-1, 2))]
        return Landmarks(self.chest_wall_side, pts(self.contour) if self.contour is not None else None,
                         tuple(pts(self.chest_wall)) if self.chest_wall is not None else None,
                         pts([self.nipple])[0] if self.nipple is not None else None, dict(self.reasons))


def _work_image(image: np.ndarray) -> tuple:
    """(8-bit copy of at most WORK_SIZE a side, its scale: work pixels per input pixel)."""
    img = image.astype(np.float32)
    lo, hi = float(img.min()), float(img.max())
    img = ((img - lo) * (255.0 / max(hi - lo, 1e-6))).astype(np.uint8)
    scale = min(1.0, WORK_SIZE / max(img.shape))
    if scale < 1.0:
        img = cv2.resize(img, (max(int(round(img.shape[1] * scale)), 1), max(int(round(img.shape[0] * scale)), 1)),
                         interpolation=cv2.INTER_AREA)
    return img, scale


def breast_mask(work: np.ndarray) -> Optional[np.ndarray]:
    """The breast's mask (uint8 0/1) in the work image: Otsu, largest component, holes filled; None if empty."""
    blur = cv2.GaussianBlur(work, (5, 5), 0)
    _, mask = cv2.threshold(blur, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return None
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = (labels == keep).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 1, thickness=-1)
    return filled


def _chest_wall_side(mask: np.ndarray, laterality: Optional[str]) -> str:
    """The image edge the breast lies against: the one more of its rows touch (laterality breaks a tie:
    VinDr-Mammo keeps left breasts on the left)."""
    band = max(2, mask.shape[1] // 50)
    left, right = int(mask[:, :band].any(axis=1).sum()), int(mask[:, -band:].any(axis=1).sum())
    if left == right and laterality in ('L', 'R'):
        return 'left' if laterality == 'L' else 'right'
    return 'left' if left >= right else 'right'


def _distance_to_line(points: np.ndarray, line: Tuple[Point, Point]) -> np.ndarray:
    """Unsigned perpendicular distance of each point (N, 2) to the infinite line through two points."""
    (x0, y0), (x1, y1) = line
    d = np.array([x1 - x0, y1 - y0], np.float64)
    n = np.hypot(*d) or 1.0
    return np.abs((points[:, 0] - x0) * d[1] - (points[:, 1] - y0) * d[0]) / n


def _pectoral_line(work: np.ndarray, mask: np.ndarray) -> tuple:
    """(line in the work image as two points, or None; reason). The image is flipped so that the chest wall is
    on the left: the muscle's edge then runs from the top edge down-left to the left edge."""
    h, w = work.shape
    rows = int(h * 0.75)
    cols = max(int(w * 0.75), 8)
    roi = work[:rows, :cols]
    roi_mask = mask[:rows, :cols]
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(roi)
    edges = cv2.Canny(cv2.GaussianBlur(clahe, (5, 5), 0), 20, 60)
    edges[roi_mask == 0] = 0
    lines = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=max(h // 25, 10), minLineLength=max(h // 10, 8),
                            maxLineGap=max(h // 40, 3))
    if lines is None:
        return None, 'no straight edge in the upper posterior corner'
    best, best_score = None, 0.0
    for x0, y0, x1, y1 in lines.reshape(-1, 4).astype(np.float64):
        if x1 == x0 or y1 == y0:
            continue
        slope = (y1 - y0) / (x1 - x0)  # the edge falls to the left: y grows as x shrinks
        if slope >= 0:
            continue
        angle = np.degrees(np.arctan(-1.0 / slope))  # from the vertical
        if not 15.0 <= angle <= 80.0:
            continue
        top_x = x0 - y0 / slope  # where the line meets y = 0
        side_y = y0 - slope * x0  # where it meets x = 0
        if not (0.03 * w < top_x < 0.85 * w and 0.05 * h < side_y < 0.95 * h):
            continue
        step = _brightness_step(clahe, roi_mask, (top_x, side_y))
        score = np.hypot(x1 - x0, y1 - y0) * step
        if step > 4.0 and score > best_score:
            best, best_score = ((top_x, 0.0), (0.0, side_y)), score
    if best is None:
        return None, 'no edge with a brighter muscle behind it at a plausible angle'
    return best, None


def _brightness_step(img: np.ndarray, mask: np.ndarray, line: tuple) -> float:
    """Mean brightness in a band on the corner side of the line minus in a band beyond it (breast only)."""
    top_x, side_y = line
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w]
    # signed distance in units of the line: < 1 inside the corner triangle
    t = xx / max(top_x, 1e-6) + yy / max(side_y, 1e-6)
    inside = (t > 0.7) & (t < 1.0) & (mask > 0)
    outside = (t > 1.0) & (t < 1.3) & (mask > 0)
    if inside.sum() < 10 or outside.sum() < 10:
        return 0.0
    return float(img[inside].mean() - img[outside].mean())


def find_landmarks(image: np.ndarray, view: str, laterality: Optional[str] = None) -> Landmarks:
    """The landmarks of one displayed mammogram (tissue bright, 2-D, any integer or float type).

    Args:
        view: 'CC' or 'MLO' (others: contour and chest-wall side only).
        laterality: 'L' or 'R', only to break a tie between the image sides.
    """
    work, scale = _work_image(image)
    mask = breast_mask(work)
    if mask is None or mask.sum() < 0.02 * mask.size:
        reason = 'no breast region (the threshold found no large bright area)'
        return Landmarks(None, None, None, None, dict(contour=reason, chest_wall=reason, nipple=reason))
    side = _chest_wall_side(mask, laterality)
    h, w = mask.shape
    flip = side == 'right'
    canon, cmask = (work[:, ::-1], mask[:, ::-1]) if flip else (work, mask)
    contours, _ = cv2.findContours(np.ascontiguousarray(cmask), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = max(contours, key=cv2.contourArea)[:, 0, :].astype(np.float64)
    reasons: Dict[str, str] = {}
    chest, why = _chest_wall(canon, cmask, view)
    if chest is None:
        reasons['chest_wall'] = why
    nipple = None
    if chest is None:
        reasons['nipple'] = f'no chest-wall line ({why})'
    else:
        skin = outline[(outline[:, 0] > 1) & (outline[:, 0] < w - 2) & (outline[:, 1] > 1) & (outline[:, 1] < h - 2)]
        if len(skin) < 5:
            reasons['nipple'] = 'the breast outline lies on the image border'
        else:
            dist = _distance_to_line(skin, chest)
            tip = skin[dist >= dist.max() - max(1.0, 0.005 * w)]
            nipple = (float(np.median(tip[:, 0])), float(np.median(tip[:, 1])))
    simple = cv2.approxPolyDP(outline.astype(np.float32).reshape(-1, 1, 2), 1.0, True)[:, 0, :]

    def back(p: np.ndarray) -> np.ndarray:  # canonical work pixels -> input pixels
        p = np.asarray(p, np.float64).reshape(-1, 2).copy()
        if flip:
            p[:, 0] = (w - 1) - p[:, 0]
        return (p + 0.5) / scale - 0.5

    to_pts = lambda a: [tuple(map(float, q)) for q in back(a)]  # noqa: E731
    return Landmarks(side, to_pts(simple), tuple(to_pts(np.array(chest))) if chest is not None else None,
                     to_pts(np.array([nipple]))[0] if nipple is not None else None, reasons)


def _chest_wall(canon: np.ndarray, cmask: np.ndarray, view: str) -> tuple:
    """(chest-wall line in canonical work pixels, or None; reason)."""
    h, w = cmask.shape
    if view == 'CC':
        rows = np.flatnonzero(cmask[:, :max(2, w // 50)].any(axis=1))
        if len(rows) < 0.1 * h:
            return None, 'the breast does not reach the posterior image edge'
        return ((0.0, float(rows[0])), (0.0, float(rows[-1]))), None
    if view == 'MLO':
        return _pectoral_line(canon, cmask)
    return None, f'view {view!r} has no chest-wall rule (CC or MLO)'


def nipple_depth(points: np.ndarray, lm: Landmarks, spacing: Sequence[float]) -> Optional[np.ndarray]:
    """Depth (mm) of each point (N, 2 pixels) from the nipple along the nipple axis: the nipple's distance to the
    chest-wall line minus the point's; None without a nipple, chest wall or spacing."""
    if lm.nipple is None or lm.chest_wall is None or not spacing:
        return None
    sy, sx = float(spacing[0]), float(spacing[1])
    scale = np.array([sx, sy])
    pts = np.asarray(points, np.float64).reshape(-1, 2) * scale
    line = tuple(tuple(np.asarray(p) * scale) for p in lm.chest_wall)
    nip = np.asarray(lm.nipple, np.float64).reshape(1, 2) * scale
    return _distance_to_line(nip, line)[0] - _distance_to_line(pts, line)


def chest_wall_angle(lm: Landmarks) -> Optional[float]:
    """The chest-wall line's angle from the vertical, degrees (0 for CC's posterior edge)."""
    if lm.chest_wall is None:
        return None
    (x0, y0), (x1, y1) = lm.chest_wall
    return float(np.degrees(np.arctan2(abs(x1 - x0), abs(y1 - y0))))
