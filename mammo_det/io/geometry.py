"""Breast crop, resize and box mapping between the DICOM grid and the converted image: numpy + cv2 only.

A converted image is ``resize(original[y0:y1, x0:x1])``. :class:`ImageTransform` records the crop (original
pixels) and the output size; it is stored in each COCO image entry so any prediction maps back exactly to
DICOM coordinates with :func:`to_original`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import cv2
import numpy as np


@dataclass(frozen=True)
class ImageTransform:
    """Original image -> converted image: crop ``[x0, y0, x1, y1)`` then resize to ``out_width x out_height``."""

    orig_width: int
    orig_height: int
    crop: tuple  # (x0, y0, x1, y1) integer pixels of the original grid, x1/y1 exclusive
    out_width: int
    out_height: int

    @property
    def scale(self) -> tuple:
        """(sx, sy): output pixels per original pixel."""
        x0, y0, x1, y1 = self.crop
        return self.out_width / (x1 - x0), self.out_height / (y1 - y0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d['crop'] = list(self.crop)
        d['scale'] = list(self.scale)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> 'ImageTransform':
        return cls(int(d['orig_width']), int(d['orig_height']), tuple(int(v) for v in d['crop']),
                   int(d['out_width']), int(d['out_height']))

    @classmethod
    def identity(cls, width: int, height: int) -> 'ImageTransform':
        return cls(width, height, (0, 0, width, height), width, height)


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clips xyxy boxes to ``[0, width] x [0, height]`` (x on the width, y on the height)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    return boxes


def to_converted(boxes: np.ndarray, t: ImageTransform) -> np.ndarray:
    """xyxy boxes in original pixels -> converted image pixels (clipped to the converted image)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    sx, sy = t.scale
    out = (boxes - [t.crop[0], t.crop[1], t.crop[0], t.crop[1]]) * [sx, sy, sx, sy]
    return clip_boxes(out, t.out_width, t.out_height)


def to_original(boxes: np.ndarray, t: ImageTransform) -> np.ndarray:
    """xyxy boxes in converted image pixels -> original DICOM pixels (inverse of :func:`to_converted`)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    sx, sy = t.scale
    return boxes / [sx, sy, sx, sy] + [t.crop[0], t.crop[1], t.crop[0], t.crop[1]]


def points_to_original(points: np.ndarray, t: ImageTransform) -> np.ndarray:
    """(N, 2) xy points in converted image pixels -> original DICOM pixels."""
    sx, sy = t.scale
    return np.asarray(points, dtype=np.float64).reshape(-1, 2) / [sx, sy] + [t.crop[0], t.crop[1]]


def breast_bbox(display: np.ndarray, *, stride: int = 8, margin: float = 0.01) -> tuple:
    """Bounding box ``(x0, y0, x1, y1)`` of the breast: the largest bright connected region.

    Works on a strided subsample of a display image (tissue bright), thresholded with Otsu, so it costs well
    under a millisecond on a full mammogram. Labels and markers are small components and fall away; an
    opening first cuts thin bright lines (the borders of digitised films) that would join the breast to the edge.

    Args:
        display: 2-D display image (tissue bright), any integer dtype.
        stride: subsampling step.
        margin: fraction of the image size added on each side.
    """
    h, w = display.shape
    small = display[::stride, ::stride]
    if small.dtype != np.uint8:
        top = float(small.max()) or 1.0
        small = (small.astype(np.float32) * (255.0 / top)).astype(np.uint8)
    if small.max() == small.min():
        return 0, 0, w, h
    _, mask = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # An opening cuts thin bright lines (film borders, rulers) that would join the breast to the image edge.
    k = max(3, (min(small.shape) // 60) | 1)
    opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    if opened.any():
        mask = opened
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return 0, 0, w, h
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh = (int(v) for v in stats[best, :4])
    mx, my = int(round(margin * w)), int(round(margin * h))
    return (max(x * stride - mx, 0), max(y * stride - my, 0),
            min((x + bw) * stride + mx, w), min((y + bh) * stride + my, h))


def grow_to_include(crop: Sequence[int], boxes: np.ndarray, width: int, height: int) -> tuple:
    """Smallest crop containing ``crop`` and every (clipped) box, so a crop never cuts an annotation; a box with no
    part inside the image (the conversion drops it) does not move the crop."""
    x0, y0, x1, y1 = crop
    boxes = clip_boxes(boxes, width, height)
    boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
    if len(boxes):
        x0 = min(x0, int(np.floor(boxes[:, 0].min())))
        y0 = min(y0, int(np.floor(boxes[:, 1].min())))
        x1 = max(x1, int(np.ceil(boxes[:, 2].max())))
        y1 = max(y1, int(np.ceil(boxes[:, 3].max())))
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def output_size(crop_width: int, crop_height: int, max_size: Optional[int]) -> tuple:
    """(width, height) after scaling the longer side down to ``max_size`` (never up), keeping the ratio."""
    if not max_size or max(crop_width, crop_height) <= max_size:
        return crop_width, crop_height
    s = max_size / max(crop_width, crop_height)
    return max(int(round(crop_width * s)), 1), max(int(round(crop_height * s)), 1)


def crop_and_resize(image: np.ndarray, t: ImageTransform) -> np.ndarray:
    """Applies ``t`` to an image of the original grid (INTER_AREA: the right filter for downscaling)."""
    x0, y0, x1, y1 = t.crop
    region = image[y0:y1, x0:x1]
    if region.shape[1] == t.out_width and region.shape[0] == t.out_height:
        return np.ascontiguousarray(region)
    return cv2.resize(region, (t.out_width, t.out_height), interpolation=cv2.INTER_AREA)
