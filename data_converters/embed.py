"""EMBED (Emory; clinical + metadata tables and DICOMs) -> COCO, through the conversion core.

The layout and its traps: ``docs/datasets.md``. Handled here:

* the tables are found by name (``*EMBED_OpenData_clinical*.csv``, ``*EMBED_OpenData_metadata*.csv``, the full ones
  before ``_reduced``) at the root or in ``tables/``; image paths come from ``anon_dicom_path``, resolved against
  the root from the first of its folders that exists there (the tables carry the authors' absolute paths);
* ``ROI_coords`` is a tuple text of ``(ymin, xmin, ymax, xmax)`` in DICOM pixels, **y first**; ``()`` is none;
* findings (clinical rows) join images on ``empi_anon`` + ``acc_anon`` with ``side`` equal to the image's
  ``ImageLateralityFinal``; side ``B`` or empty matches both breasts;
* only 2D images are converted: C-view (``cview``) and spot/magnification images are listed in ``report.json``
  (``skipped_images``), as are other views than CC/MLO, and images whose side has a BI-RADS 3-5 finding but no
  ROI (its unlocated lesion would score as false positives).

Labels (EMBED does not link an ROI to one finding): an image's ROIs carry every category of the findings on its
side: ``massshape`` A -> Architectural Distortion, any other mass shape -> Mass, ``calcfind`` -> Suspicious
Calcification; ``birads`` the highest of their assessments (``asses`` P/S/M = 3/4/5; A/N/B/K/X -> none), the
letters in ``birads_raw``; ``pathology`` malignant when a finding's ``path_severity`` is 0 or 1 (invasive,
non-invasive cancer), else benign when one is 4 or 5 (benign, normal tissue), else null. ``tissueden`` 1-4 ->
density A-D. No official split: a seeded, patient-level stratified one.
"""
from __future__ import annotations

import csv
import glob
import os
import re
from typing import Dict, List, Optional

from .records import Box, ConversionError, ImageRecord, ParseLog, check_id

ASSES = {'A': 0, 'N': 1, 'B': 2, 'P': 3, 'S': 4, 'M': 5, 'K': 6}
MALIGNANT, BENIGN = ('0', '1'), ('4', '5')
DATASET = 'embed'
DESCRIPTION = 'EMBED converted by mammo-det'


def _table(root: str, what: str) -> str:
    hits = sorted(glob.glob(os.path.join(root, f'*EMBED_OpenData_{what}*.csv')) +
                  glob.glob(os.path.join(root, 'tables', f'*EMBED_OpenData_{what}*.csv')))
    if not hits:
        raise ConversionError(f'{root}: no EMBED_OpenData_{what}.csv (at the root or in tables/)')
    return sorted(hits, key=lambda p: ('reduced' in os.path.basename(p), p))[0]


def _read(path: str, need: tuple) -> List[tuple]:
    with open(path, newline='', encoding='utf-8-sig') as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in need if c not in header]
        if missing:
            raise ConversionError(f'{path}: missing column(s) {missing}')
        reader.fieldnames = header
        return [(reader.line_num, {k: (v or '').strip() for k, v in row.items() if k}) for row in reader]


def parse_roi_coords(text: str) -> List[tuple]:
    """'((ymin, xmin, ymax, xmax), ...)' -> [(xmin, ymin, xmax, ymax), ...]; ValueError when not groups of 4."""
    nums = [int(v) for v in re.findall(r'-?\d+', text or '')]
    if len(nums) % 4:
        raise ValueError(f'ROI_coords {text!r} is not (ymin, xmin, ymax, xmax) groups')
    groups = [nums[k:k + 4] for k in range(0, len(nums), 4)]
    return [(float(x0), float(y0), float(x1), float(y1)) for y0, x0, y1, x1 in groups]


def _resolve(bases: List[str], path: str) -> Optional[str]:
    """The file a table path names: its longest tail that exists under the root or a folder of the root (the
    tables carry the authors' absolute paths, e.g. /mnt/.../cohort_1/..., while a download holds
    images/cohort_1/...)."""
    parts = [p for p in path.replace('\\', '/').split('/') if p not in ('', '.')]
    for k in range(len(parts)):
        for base in bases:
            candidate = os.path.join(base, *parts[k:])
            if os.path.exists(candidate):
                return candidate
    return None


def _categories(f: dict) -> List[str]:
    cats = []
    if f.get('massshape'):
        cats.append('Architectural Distortion' if f['massshape'] == 'A' else 'Mass')
    if f.get('calcfind'):
        cats.append('Suspicious Calcification')
    return cats


def read_release(root: str, log: Optional[ParseLog] = None) -> Dict[str, ImageRecord]:
    log = log or ParseLog()
    clinical_path, meta_path = _table(root, 'clinical'), _table(root, 'metadata')
    findings: Dict[tuple, list] = {}
    for line, row in _read(clinical_path, ('empi_anon', 'acc_anon', 'side', 'asses', 'tissueden')):
        if row['asses'] and row['asses'] not in ASSES and row['asses'] != 'X':
            log.row(f"{clinical_path} line {line}: asses {row['asses']!r} is not one of A N B P S M K X")
            continue
        findings.setdefault((row['empi_anon'], row['acc_anon']), []).append(row)
    records: Dict[str, ImageRecord] = {}
    bases = [root] + sorted(os.path.join(root, d) for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    need = ('anon_dicom_path', 'empi_anon', 'acc_anon', 'FinalImageType', 'ImageLateralityFinal', 'ViewPosition',
            'spot_mag', 'ROI_coords')
    for line, row in _read(meta_path, need):
        where = f'{meta_path} line {line}'
        if row['FinalImageType'].lower() != '2d':
            log.images.append(f"{where}: FinalImageType {row['FinalImageType']!r} (only 2D images are converted)")
            continue
        if row['spot_mag'] not in ('', '0', '0.0'):
            log.images.append(f'{where}: a spot compression or magnification view')
            continue
        lat, view = row['ImageLateralityFinal'], row['ViewPosition']
        if view not in ('CC', 'MLO'):
            log.images.append(f'{where}: ViewPosition {view!r} (only CC and MLO are converted)')
            continue
        try:
            if lat not in ('L', 'R'):
                raise ValueError(f'ImageLateralityFinal {lat!r} is not L or R')
            rois = parse_roi_coords(row['ROI_coords'])
            source = _resolve(bases, row['anon_dicom_path'])
            if source is None:
                raise ValueError(f"{row['anon_dicom_path']} not found under {root}")
            key = check_id(os.path.splitext(os.path.basename(source))[0], 'SOP instance UID')
            study = check_id(row['acc_anon'], 'acc_anon')
            patient = check_id(row['empi_anon'], 'empi_anon')
        except ValueError as exc:
            log.row(f'{where}: {exc}')
            continue
        exam = findings.get((row['empi_anon'], row['acc_anon']), [])
        side = [f for f in exam if f['side'] in (lat, 'B', '')]
        labelled = [f for f in side if _categories(f)]
        suspicious = [f for f in labelled if ASSES.get(f['asses'], 0) in (3, 4, 5)]
        if suspicious and not rois:
            log.images.append(f'{where}: a BI-RADS 3-5 finding on side {lat} but no ROI on the image; left out')
            continue
        boxes = []
        if rois and not labelled:
            log.boxes.append(f'{where}: {len(rois)} ROI(s) but no finding with a category on side {lat}')
        elif rois:
            cats = list(dict.fromkeys(c for f in labelled for c in _categories(f)))
            levels = [ASSES[f['asses']] for f in labelled if ASSES.get(f['asses']) in (3, 4, 5)]
            sev = {f.get('path_severity', '') for f in labelled}
            pathology = 'malignant' if sev & set(MALIGNANT) else 'benign' if sev & set(BENIGN) else None
            raw = ','.join(sorted({f['asses'] for f in labelled if f['asses']})) or None
            for x0, y0, x1, y1 in rois:
                if x1 <= x0 or y1 <= y0:
                    log.boxes.append(f'{where}: empty ROI ({y0}, {x0}, {y1}, {x1})')
                    continue
                boxes.append(Box(cats, max(levels) if levels else None, (x0, y0, x1, y1), line, birads_raw=raw,
                                 pathology=pathology))
        dens = {f['tissueden'] for f in exam if f['tissueden'] in ('1', '2', '3', '4')}
        exam_birads = [ASSES[f['asses']] for f in side if f['asses'] in ASSES]
        records[key] = ImageRecord(
            source_id=key, study_id=study, patient_id=patient, source=source, laterality=lat, view_position=view,
            fields=dict(breast_density='ABCD'[int(min(dens)) - 1] if dens else None,
                        breast_birads=max(exam_birads) if exam_birads else None, acc_anon=study),
            boxes=boxes, first_line=line)
    if not records:
        raise ConversionError(f'{meta_path}: no usable 2D images')
    return records
