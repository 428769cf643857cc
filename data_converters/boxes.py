"""The one check of every box a release gives, whatever the adapter: clipped to its image, dropped (and reported,
with the adapter's row) when nothing of it is inside or when it has no width or height once cropped and resized,
so no empty box ever becomes ground truth that no detection can match.

Boxes of records whose size the release states are checked when the release is parsed, before the splits are
drawn (a box outside its image must not make the image a positive); the rest, and every box's converted extent,
when the COCO files are written, against the size of the file itself.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, List, Optional, Tuple

import numpy as np

from .records import Box, ImageRecord, ParseLog


def _xyxy(b) -> str:
    return '(' + ', '.join(f'{float(v):g}' for v in b) + ')'


def _where(box: Box, source_id: str) -> str:
    return f'{box.where or f"line {box.line}"} ({source_id})'


def clip_box(box: Box, width: int, height: int, source_id: str) -> Tuple[Optional[Box], Optional[str]]:
    """(the box clipped to a ``width`` x ``height`` image, or None when no part is inside; what was done to it,
    or None when nothing was)."""
    from mammo_det.io.geometry import clip_boxes

    given = np.array([box.xyxy], dtype=np.float64)
    clipped = clip_boxes(given, width, height)
    x0, y0, x1, y1 = clipped[0]
    if x1 <= x0 or y1 <= y0:
        return None, f'{_where(box, source_id)}: box {_xyxy(box.xyxy)} has no part inside the {width}x{height} ' \
                     'image; left out'
    if np.array_equal(clipped, given):
        return box, None
    return replace(box, xyxy=tuple(float(v) for v in clipped[0])), \
        f'{_where(box, source_id)}: box {_xyxy(box.xyxy)} clipped to the {width}x{height} image: {_xyxy(clipped[0])}'


def check_records(records: Dict[str, ImageRecord], log: ParseLog) -> List[Tuple[str, str]]:
    """Clips the boxes of every record whose size the release states, in place; a box with no part inside goes
    to ``log.boxes``. Returns (record key, what was clipped) of each box clipped."""
    clipped = []
    for key in sorted(records):
        rec = records[key]
        if rec.width is None or rec.height is None:
            continue
        kept = []
        for box in rec.boxes:
            box, note = clip_box(box, rec.width, rec.height, rec.source_id)
            if note and box is None:
                log.boxes.append(note)
            elif note:
                clipped.append((key, note))
            if box is not None:
                kept.append(box)
        rec.boxes = kept
    return clipped


def place_box(box: Box, t, source_id: str) -> Tuple[Optional[tuple], Optional[str]]:
    """(the box's xyxy in the converted image, or None when it is dropped; what was done to it, or None), against
    the image's transform ``t`` (the file's own size)."""
    from mammo_det.io.geometry import to_converted

    placed, note = clip_box(box, t.orig_width, t.orig_height, source_id)
    if placed is None:
        return None, note
    x0, y0, x1, y1 = (float(v) for v in to_converted(np.array([placed.xyxy]), t)[0])
    if round(x1 - x0, 3) <= 0 or round(y1 - y0, 3) <= 0:
        return None, (f'{_where(box, source_id)}: box {_xyxy(box.xyxy)} is {x1 - x0:.3g} x {y1 - y0:.3g} px once '
                      'cropped and resized; left out')
    return (x0, y0, x1, y1), note
