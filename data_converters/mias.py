"""mini-MIAS (``mdbNNN.pgm`` + ``Info.txt``) -> COCO, through the conversion core.

The layout and its traps: ``docs/datasets.md``. Handled here:

* ``Info.txt`` (or ``info.txt``): only lines starting ``mdb`` are rows; a row has 3 tokens (``NORM``), 4 (class and
  severity, no position) or 7 (with centre x, y and radius); tokens 5-7 count only when they are integers; a film
  with several abnormalities has several rows;
* the origin is the bottom-left corner: a circle (x, y, r) is the box ``(x - r, H - y - r, x + r, H - y + r)`` in
  image rows (H = 1024, checked against each file), clipped to the image;
* a film with an abnormality that has no position is left out, and listed in ``report.json``
  (``skipped_images``): kept, it would be a normal film, or its unlocated lesion would score as false positives.

Labels: CALC -> Suspicious Calcification; CIRC, SPIC, MISC (masses) -> Mass; ARCH -> Architectural Distortion;
ASYM -> Asymmetry; severity B/M -> pathology benign/malignant; no BI-RADS (null). Films are MLO; even numbers are
left breasts, odd numbers right; a patient is a pair (``(n + 1) // 2``). No official split: a seeded,
patient-level stratified one.
"""
from __future__ import annotations

import os
import re
from typing import Dict, Optional

from .records import Box, ConversionError, ImageRecord, ParseLog

SIZE = 1024  # every mini-MIAS film; Info.txt's coordinates are in this frame
SPACING_MM = (0.2, 0.2)  # the MIAS readme: 200 micron pixels at 1024 x 1024
CATEGORY = {'CALC': 'Suspicious Calcification', 'CIRC': 'Mass', 'SPIC': 'Mass', 'MISC': 'Mass',
            'ARCH': 'Architectural Distortion', 'ASYM': 'Asymmetry'}
TISSUE = {'F': 'fatty', 'G': 'fatty-glandular', 'D': 'dense-glandular'}
SEVERITY = {'B': 'benign', 'M': 'malignant'}
DATASET = 'mias'
DESCRIPTION = 'mini-MIAS converted by mammo-det'


def _info_path(root: str) -> str:
    for name in ('Info.txt', 'info.txt', 'INFO.TXT'):
        if os.path.exists(os.path.join(root, name)):
            return os.path.join(root, name)
    raise ConversionError(f'{root}: no Info.txt')


def _image_path(root: str, ref: str) -> Optional[str]:
    for folder in (root, os.path.join(root, 'images'), os.path.join(root, 'all-mias')):
        p = os.path.join(folder, f'{ref}.pgm')
        if os.path.exists(p):
            return p
    return None


def read_release(root: str, log: Optional[ParseLog] = None) -> Dict[str, ImageRecord]:
    log = log or ParseLog()
    path = _info_path(root)
    rows: Dict[str, list] = {}
    with open(path, encoding='latin-1') as fh:
        for line_no, line in enumerate(fh, 1):
            tokens = line.split()
            if not tokens or not re.fullmatch(r'mdb\d{3}', tokens[0]):
                continue  # header, comments, notes
            where = f'{path} line {line_no}'
            ref = tokens[0]
            if len(tokens) < 3 or tokens[1] not in TISSUE or (tokens[2] != 'NORM' and tokens[2] not in CATEGORY):
                log.row(f'{where}: {line.strip()!r} is not "ref tissue class [severity x y radius]"')
                continue
            if tokens[2] != 'NORM' and (len(tokens) < 4 or tokens[3] not in SEVERITY):
                log.row(f'{where}: severity {tokens[3:4]} is not B or M')
                continue
            xyr = tokens[4:7]
            located = len(xyr) == 3 and all(re.fullmatch(r'\d+', t) for t in xyr)
            rows.setdefault(ref, []).append((line_no, tokens, tuple(int(t) for t in xyr) if located else None))
    records: Dict[str, ImageRecord] = {}
    for ref in sorted(rows):
        entries = rows[ref]
        first = entries[0][0]
        source = _image_path(root, ref)
        if source is None:
            log.row(f'{path} line {first}: {ref}.pgm not found')
            continue
        findings = [e for e in entries if e[1][2] != 'NORM']
        unlocated = [e for e in findings if e[2] is None]
        if unlocated:
            log.images.append(f"{path} line {unlocated[0][0]}: {ref} has a {unlocated[0][1][2]} abnormality "
                                  'without a position; the film is left out (not a normal, not a partial truth)')
            continue
        if findings and len(findings) != len(entries):
            log.row(f'{path} line {first}: {ref} is both NORM and abnormal')
            continue
        n = int(ref[3:])
        boxes = []
        for line_no, tokens, (x, y, r) in ((e[0], e[1], e[2]) for e in findings):
            row = SIZE - y
            boxes.append(Box([CATEGORY[tokens[2]]], None, (float(x - r), float(row - r), float(x + r), float(row + r)),
                             line_no, where=f'{path} line {line_no} (circle ({x}, {y}, {r}))',
                             birads_raw=None, pathology=SEVERITY[tokens[3]]))
        patient = f'mias{(n + 1) // 2:03d}'
        records[ref] = ImageRecord(source_id=ref, study_id=patient, patient_id=patient, source=source,
                                   laterality='L' if n % 2 == 0 else 'R', view_position='MLO', width=SIZE,
                                   height=SIZE, fields=dict(tissue=TISSUE[entries[0][1][1]]), boxes=boxes,
                                   first_line=first, spacing=SPACING_MM)
    return records
