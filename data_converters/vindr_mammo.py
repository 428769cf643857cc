"""VinDr-Mammo (DICOMs + CSVs) -> COCO: the library behind ``mammo-det convert``.

Output::

    OUT/images/<study_id>/<image_id>.png
    OUT/annotations/instances_{train,val,test}.json
    OUT/report.json

One COCO annotation per (box, label); boxes clipped to the image, then mapped through the recorded crop and
resize. Every image is kept, with or without findings. ``test`` is the official test split; ``val`` is a
study-level stratified share of the official training split.

A rerun after a crash or a kill resumes: each finished image is appended to ``OUT/.journal.jsonl`` after its
PNG is in place, so a rerun with the same options redoes only what is missing and writes the same JSON.
"""
from __future__ import annotations

import ast
import csv
import math
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from mammo_det.vocab import (BIRADS_VALUES, BREAST_BIRADS_VALUES, DENSITIES, FINDING_CATEGORIES, LATERALITIES,
                             NO_FINDING, VIEWS)

from . import core
from .core import Box, ConversionError, ConvertOptions

ID_RE = re.compile(r'^[0-9a-f]{32}$')
REQUIRED = ('study_id', 'series_id', 'image_id', 'laterality', 'view_position', 'height', 'width',
            'breast_birads', 'breast_density', 'finding_categories', 'finding_birads',
            'xmin', 'ymin', 'xmax', 'ymax', 'split')
SPLITS = {'training': 'train', 'test': 'test'}
DESCRIPTION = 'VinDr-Mammo converted by mammo-det'


@dataclass
class ImageRecord:
    study_id: str
    series_id: str
    image_id: str
    laterality: str
    view_position: str
    height: int
    width: int
    breast_birads: int
    breast_density: str
    split: str
    first_line: int
    boxes: List[Box] = field(default_factory=list)


def _parse_birads(text: str, allowed: Sequence[int], field_name: str) -> Optional[int]:
    text = text.strip()
    if not text:
        return None
    m = re.fullmatch(r'BI-RADS\s*([0-9])', text)
    if not m or int(m.group(1)) not in allowed:
        raise ValueError(f"{field_name} {text!r} is not one of {', '.join(f'BI-RADS {b}' for b in allowed)}")
    return int(m.group(1))


def _parse_row(row: dict) -> tuple:
    """(image fields, Box or None) of one CSV row; ValueError with the field name when a value is wrong."""
    for key in ('study_id', 'series_id', 'image_id'):
        if not ID_RE.match(row[key] or ''):
            raise ValueError(f'{key} {row[key]!r} is not a 32-character lowercase hex id')
    lat, view = row['laterality'].strip(), row['view_position'].strip()
    if lat not in LATERALITIES:
        raise ValueError(f'laterality {lat!r} is not one of {LATERALITIES}')
    if view not in VIEWS:
        raise ValueError(f'view_position {view!r} is not one of {VIEWS}')
    try:
        height, width = int(float(row['height'])), int(float(row['width']))
    except ValueError:
        raise ValueError(f"height/width {row['height']!r}/{row['width']!r} are not numbers") from None
    if height <= 0 or width <= 0:
        raise ValueError(f'height/width {height}/{width} must be positive')
    breast_birads = _parse_birads(row['breast_birads'], BREAST_BIRADS_VALUES, 'breast_birads')
    if breast_birads is None:
        raise ValueError('breast_birads is empty')
    dens = re.fullmatch(r'DENSITY\s*([A-Z])', row['breast_density'].strip())
    if not dens or dens.group(1) not in DENSITIES:
        raise ValueError(f"breast_density {row['breast_density']!r} is not DENSITY A..D")
    split = row['split'].strip()
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not 'training' or 'test'")
    try:
        cats = ast.literal_eval(row['finding_categories'].strip())  # the Python-list text of the release
    except (ValueError, SyntaxError):
        raise ValueError(f"finding_categories {row['finding_categories']!r} is not a list text") from None
    if isinstance(cats, str):
        cats = [cats]
    if not isinstance(cats, (list, tuple)) or not cats or not all(isinstance(c, str) for c in cats):
        raise ValueError(f"finding_categories {row['finding_categories']!r} is not a non-empty list of names")
    unknown = [c for c in cats if c not in FINDING_CATEGORIES and c != NO_FINDING]
    if unknown:
        raise ValueError(f'unknown finding categor{"y" if len(unknown) == 1 else "ies"} {unknown}')
    info = dict(study_id=row['study_id'], series_id=row['series_id'], image_id=row['image_id'],
                laterality=lat, view_position=view, height=height, width=width, breast_birads=breast_birads,
                breast_density=dens.group(1), split=split)
    coords = [row[k].strip() for k in ('xmin', 'ymin', 'xmax', 'ymax')]
    if NO_FINDING in cats:
        if len(cats) > 1:
            raise ValueError(f'finding_categories {cats} mixes No Finding with findings')
        if any(coords):
            raise ValueError('a No Finding row has box coordinates')
        return info, None
    try:
        x0, y0, x1, y1 = (float(c) for c in coords)
    except ValueError:
        raise ValueError(f'box {coords} has a missing or non-numeric coordinate') from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValueError(f'box {coords} is not finite')
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f'box {coords} is inverted or empty (xmax <= xmin or ymax <= ymin)')
    # Real boxes run up to ~27 px before and ~41 px past the edges: clip x to the width, y to the height.
    cx0, cx1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
    cy0, cy1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f'box {coords} lies outside the {width}x{height} image')
    birads = _parse_birads(row['finding_birads'], BIRADS_VALUES, 'finding_birads')
    raw = row['finding_birads'].strip() or None
    return info, Box(list(dict.fromkeys(cats)), birads, (cx0, cy0, cx1, cy1), 0, birads_raw=raw)


def read_findings(path: str, on_error: str = 'fail', skipped: Optional[list] = None) -> Dict[str, ImageRecord]:
    """Parses ``finding_annotations.csv`` into one record per image, validating every field.

    Raises:
        ConversionError: naming the file, the line and the field (``on_error='fail'``); with ``'skip'`` the
            row is left out and the message appended to ``skipped``.
    """
    skipped = [] if skipped is None else skipped
    images: Dict[str, ImageRecord] = {}
    try:
        fh = open(path, newline='', encoding='utf-8-sig')
    except OSError as exc:
        raise ConversionError(f'{path}: cannot open ({exc.strerror})') from None
    with fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ConversionError(f'{path}: missing column(s) {missing}; header is {reader.fieldnames}')
        for row in reader:
            line = reader.line_num
            where = f'{path} line {line}'
            if None in row or any(row[c] is None for c in REQUIRED):
                core.fail_or_skip(f'{where}: wrong number of fields', on_error, skipped)
                continue
            try:
                info, box = _parse_row(row)
            except ValueError as exc:
                core.fail_or_skip(f'{where}: {exc}', on_error, skipped)
                continue
            rec = images.get(info['image_id'])
            if rec is None:
                rec = images[info['image_id']] = ImageRecord(**info, first_line=line)
            else:
                clash = [k for k, v in info.items() if getattr(rec, k) != v]
                if clash:
                    core.fail_or_skip(f'{where}: {clash} differ from line {rec.first_line} of the same image',
                                  on_error, skipped)
                    continue
            if box is not None:
                box.line = line
                rec.boxes.append(box)
    if not images:
        raise ConversionError(f'{path}: no usable rows')
    return images


def to_records(root: str, images: Dict[str, ImageRecord]) -> Dict[str, core.ImageRecord]:
    """The parsed release as the conversion core's records (the study is the patient: VinDr-Mammo has no patient
    ids, and its studies are what its official split and our validation split keep together)."""
    return {i: core.ImageRecord(
        key=i, study_id=r.study_id, patient_id=r.study_id,
        source=os.path.join(root, 'images', r.study_id, f'{i}.dicom'), laterality=r.laterality,
        view_position=r.view_position, split=SPLITS[r.split], width=r.width, height=r.height,
        fields=dict(series_id=r.series_id, breast_birads=r.breast_birads, breast_density=r.breast_density),
        boxes=r.boxes, first_line=r.first_line) for i, r in images.items()}


def read_release(root: str, log: Optional[core.ParseLog] = None) -> Dict[str, core.ImageRecord]:
    log = log or core.ParseLog()
    return to_records(root, read_findings(os.path.join(root, 'finding_annotations.csv'), log.on_error, log.rows))


def convert(root: str, out: str, opts: Optional[ConvertOptions] = None) -> dict:
    """Converts a VinDr-Mammo release at ``root`` into COCO at ``out``; returns the report (also report.json).

    Raises:
        ConversionError: bad CSV row, unknown category, bad id, missing or corrupt DICOM (``on_error='fail'``).
    """
    return core.convert_release(read_release, root, out, opts, 'vindr-mammo', DESCRIPTION)
