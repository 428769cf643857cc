"""VinDr-Mammo (DICOMs + CSVs) -> records for the conversion core (``mammo-det convert --format vindr``).

The layout: ``finding_annotations.csv`` (one row per box, or one 'No Finding' row per image) and
``images/<study_id>/<image_id>.dicom`` (``docs/datasets.md``); an optional ``lesion_id`` column (the synthetic
releases write one; the real release links no lesion across views) becomes the annotations' ``lesion_id``. One
record per image, with every row's box; ids are validated (32 lowercase hex digits, as the release has them).
The study is the patient: VinDr-Mammo has no patient ids, and its studies are what its official split and our
validation split keep together. ``test`` is the official test split; ``val`` is a study-level stratified share of
the official training split.
"""
from __future__ import annotations

import ast
import math
import os
import re
from typing import Dict, List, Optional, Sequence

from mammo_det.vocab import (BIRADS_VALUES, BREAST_BIRADS_VALUES, DENSITIES, FINDING_CATEGORIES, LATERALITIES,
                             NO_FINDING, VIEWS)

from .records import Box, ConversionError, ImageRecord, ParseLog
from .tables import read_table

DATASET = 'vindr-mammo'
DESCRIPTION = 'VinDr-Mammo converted by mammo-det'
ID_RE = re.compile(r'^[0-9a-f]{32}$')
REQUIRED = ('study_id', 'series_id', 'image_id', 'laterality', 'view_position', 'height', 'width',
            'breast_birads', 'breast_density', 'finding_categories', 'finding_birads',
            'xmin', 'ymin', 'xmax', 'ymax', 'split')
SPLITS = {'training': 'train', 'test': 'test'}


def _parse_birads(text: str, allowed: Sequence[int], field_name: str) -> Optional[int]:
    text = text.strip()
    if not text:
        return None
    m = re.fullmatch(r'BI-RADS\s*([0-9])', text)
    if not m or int(m.group(1)) not in allowed:
        raise ValueError(f"{field_name} {text!r} is not one of {', '.join(f'BI-RADS {b}' for b in allowed)}")
    return int(m.group(1))


def _image_info(row: dict) -> dict:
    """The image's fields of one row (every row of an image repeats them); ValueError naming a bad field."""
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
    return dict(study_id=row['study_id'], series_id=row['series_id'], image_id=row['image_id'], laterality=lat,
                view_position=view, height=height, width=width, breast_birads=breast_birads,
                breast_density=dens.group(1), split=split)


def _categories(text: str) -> List[str]:
    """The Python-list text of ``finding_categories`` (read with ``ast.literal_eval``, never ``eval``)."""
    try:
        cats = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        raise ValueError(f'finding_categories {text!r} is not a list text') from None
    if isinstance(cats, str):
        cats = [cats]
    if not isinstance(cats, (list, tuple)) or not cats or not all(isinstance(c, str) for c in cats):
        raise ValueError(f'finding_categories {text!r} is not a non-empty list of names')
    unknown = [c for c in cats if c not in FINDING_CATEGORIES and c != NO_FINDING]
    if unknown:
        raise ValueError(f'unknown finding categor{"y" if len(unknown) == 1 else "ies"} {unknown}')
    return list(cats)


def _box(row: dict, cats: List[str], width: int, height: int) -> Optional[Box]:
    """The row's box (None for a No Finding row), clipped to the image."""
    coords = [row[k].strip() for k in ('xmin', 'ymin', 'xmax', 'ymax')]
    if NO_FINDING in cats:
        if len(cats) > 1:
            raise ValueError(f'finding_categories {cats} mixes No Finding with findings')
        if any(coords):
            raise ValueError('a No Finding row has box coordinates')
        return None
    try:
        x0, y0, x1, y1 = (float(c) for c in coords)
    except ValueError:
        raise ValueError(f'box {coords} has a missing or non-numeric coordinate') from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValueError(f'box {coords} is not finite')
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f'box {coords} is inverted or empty (xmax <= xmin or ymax <= ymin)')
    # Real boxes run up to ~27 px before and ~41 px past the edges: the conversion core clips them (and drops one
    # with no part inside), reporting each.
    birads = _parse_birads(row['finding_birads'], BIRADS_VALUES, 'finding_birads')
    raw = row['finding_birads'].strip() or None
    # lesion_id: an optional column (our synthetic releases write it) linking a lesion's boxes across views
    lesion = (row.get('lesion_id') or '').strip()
    return Box(list(dict.fromkeys(cats)), birads, (x0, y0, x1, y1), 0, birads_raw=raw,
               extra=dict(lesion_id=lesion) if lesion else {})


def _record(info: dict, root: str, line: int) -> ImageRecord:
    study, image = info['study_id'], info['image_id']
    return ImageRecord(source_id=image, study_id=study, patient_id=study,
                       source=os.path.join(root, 'images', study, f'{image}.dicom'), laterality=info['laterality'],
                       view_position=info['view_position'], split=SPLITS[info['split']], width=info['width'],
                       height=info['height'], fields=dict(series_id=info['series_id'],
                                                          breast_birads=info['breast_birads'],
                                                          breast_density=info['breast_density']),
                       first_line=line)


def read_findings(path: str, log: Optional[ParseLog] = None) -> Dict[str, ImageRecord]:
    """Parses ``finding_annotations.csv`` into one record per image (images under the CSV's folder), validating
    every field.

    Raises:
        ConversionError: naming the file, the line and the field (``log.on_error='fail'``); with ``'skip'`` the
            row is left out and the message appended to ``log.rows``.
    """
    log = log or ParseLog()
    root = os.path.dirname(path)
    records: Dict[str, ImageRecord] = {}
    infos: Dict[str, dict] = {}
    for line, row in read_table(path, REQUIRED, log=log):
        where = f'{path} line {line}'
        try:
            info = _image_info(row)
            box = _box(row, _categories(row['finding_categories']), info['width'], info['height'])
        except ValueError as exc:
            log.row(f'{where}: {exc}')
            continue
        image = info['image_id']
        if image not in records:
            records[image], infos[image] = _record(info, root, line), info
        else:
            clash = [k for k, v in info.items() if infos[image][k] != v]
            if clash:
                log.row(f'{where}: {clash} differ from line {records[image].first_line} of the same image')
                continue
        if box is not None:
            box.line, box.where = line, where
            records[image].boxes.append(box)
    if not records:
        raise ConversionError(f'{path}: no usable rows')
    return records


def read_release(root: str, log: Optional[ParseLog] = None) -> Dict[str, ImageRecord]:
    return read_findings(os.path.join(root, 'finding_annotations.csv'), log)
