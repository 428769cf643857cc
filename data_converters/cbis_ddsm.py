"""CBIS-DDSM (TCIA: the four case-description CSVs + the DICOM download) -> COCO, through the conversion core.

What the release holds and its traps: ``docs/datasets.md``. Handled here:

* both TCIA download layouts: "classic" (``<Subject>/<StudyUID>/<SeriesUID>/000000.dcm`` or ``1-1.dcm``) and
  "descriptive" (``CBIS-DDSM/<Subject>/<MM-DD-YYYY-DDSM[-NA]-<5 digits>>/<n-description-<5 digits>>/1-1.dcm``),
  under the root, a ``CBIS-DDSM/`` or ``DOI/`` folder, or a ``manifest-*`` folder;
* every cell stripped (paths carry newlines), ``N/A`` as missing, both spellings of the density column;
* one box per abnormality, from its mask; which file is the mask is decided by content (binary, the size of the
  full image) among every file of the abnormality's ROI folders, because crop and mask columns are swapped in many
  rows and a ROI series holds one or two files in either order;
* a mask whose size differs from its image, or no mask at all: the abnormality is left out and listed in
  ``report.json`` (``skipped_boxes``), a known trait of the release rather than an error; the image stays, so its
  other boxes are kept;
* several abnormalities per image; the same view of a patient in the mass and the calcification CSVs is one
  image with the boxes of both (its two copies in the download are the same mammogram).

Labels: ``mass`` -> Mass, ``calcification`` -> Suspicious Calcification; ``assessment`` 3/4/5 -> ``birads`` (0-2
-> null), the raw assessment in ``birads_raw``; ``pathology`` MALIGNANT -> malignant, BENIGN and
BENIGN_WITHOUT_CALLBACK -> benign. The official split is the CSV's (train/test); validation is a patient-level
share of train. Breast density 1-4 is written as A-D.
"""
from __future__ import annotations

import glob
import os
import re
from typing import Dict, List, Optional

import numpy as np

from mammo_det.vocab import density_letter

from .records import ConversionError, ImageRecord, ParseLog, PendingBox, check_id
from .tables import read_table

CSV_NAMES = {
    'mass_case_description_train_set.csv': ('mass', 'train'),
    'mass_case_description_test_set.csv': ('mass', 'test'),
    'calc_case_description_train_set.csv': ('calcification', 'train'),
    'calc_case_description_test_set.csv': ('calcification', 'test'),
}
CATEGORY = {'mass': 'Mass', 'calcification': 'Suspicious Calcification'}
PATHOLOGY = {'MALIGNANT': 'malignant', 'BENIGN': 'benign', 'BENIGN_WITHOUT_CALLBACK': 'benign'}
SIDES = {'LEFT': 'L', 'RIGHT': 'R'}
COLUMNS = ('patient_id', 'left or right breast', 'image view', 'abnormality id', 'abnormality type', 'assessment',
           'pathology', 'image file path', 'cropped image file path', 'ROI mask file path')
DATASET = 'cbis-ddsm'
DESCRIPTION = 'CBIS-DDSM converted by mammo-det'


def find_csvs(root: str) -> List[tuple]:
    """(path, abnormality type, split) of each case-description CSV in ``root`` or one folder below."""
    out = []
    for name, (kind, split) in CSV_NAMES.items():
        hits = sorted(glob.glob(os.path.join(root, name)) + glob.glob(os.path.join(root, '*', name)))
        if hits:
            out.append((hits[0], kind, split))
    if not out:
        raise ConversionError(f'{root}: none of the CBIS-DDSM CSVs ({", ".join(CSV_NAMES)})')
    return out


def subject_folders(root: str) -> Dict[str, str]:
    """TCIA Subject ID -> its folder, over the layouts' possible bases (root, CBIS-DDSM/, DOI/, manifest-*/...)."""
    bases = [root] + sorted(glob.glob(os.path.join(root, '*'))) + sorted(glob.glob(os.path.join(root, '*', '*')))
    out: Dict[str, str] = {}
    for base in bases:
        if not os.path.isdir(base):
            continue
        for name in os.listdir(base):
            if re.match(r'^(Mass|Calc)-(Training|Test)_P_\d+_(LEFT|RIGHT)_(CC|MLO)(_\d+)?$', name):
                out.setdefault(name, os.path.join(base, name))
    return out


def _dicoms(folder: str) -> List[str]:
    return sorted(glob.glob(os.path.join(folder, '**', '*.dcm'), recursive=True))


def _image_file(folder: str, csv_path: str) -> Optional[str]:
    """The full mammogram of a subject folder: its only DICOM, else the one under the CSV's study/series."""
    files = _dicoms(folder)
    if len(files) <= 1:
        return files[0] if files else None
    parts = csv_path.split('/')
    if len(parts) >= 3:
        study, series = parts[1], parts[2]
        for f in files:  # classic layout: the UIDs are folder names; descriptive: their last 5 digits end them
            rel = os.path.relpath(f, folder).split(os.sep)
            if len(rel) >= 3 and (rel[0] == study or rel[0].endswith('-' + study[-5:])) and \
                    (rel[1] == series or rel[1].endswith('-' + series[-5:])):
                return f
    return None


DENSITY_SPELLINGS = ('breast_density', 'breast density')  # the files differ


def _rows(path: str, log: ParseLog):
    for line, row in read_table(path, COLUMNS, log=log, either=[DENSITY_SPELLINGS]):
        row['breast_density'] = next(row[c] for c in DENSITY_SPELLINGS if c in row)
        yield line, {k: (None if v == 'N/A' else v) for k, v in row.items()}


def _parse(row: dict, kind: str) -> dict:
    side = SIDES.get(row['left or right breast'] or '')
    if side is None:
        raise ValueError(f"left or right breast {row['left or right breast']!r} is not LEFT or RIGHT")
    view = row['image view']
    if view not in ('CC', 'MLO'):
        raise ValueError(f'image view {view!r} is not CC or MLO')
    if not re.fullmatch(r'P_\d+', row['patient_id'] or ''):
        raise ValueError(f"patient_id {row['patient_id']!r} is not P_ and digits")
    if (row['abnormality type'] or '').lower() != kind:
        raise ValueError(f"abnormality type {row['abnormality type']!r} in a {kind} file")
    pathology = PATHOLOGY.get(row['pathology'] or '')
    if pathology is None:
        raise ValueError(f"pathology {row['pathology']!r} is not MALIGNANT, BENIGN or BENIGN_WITHOUT_CALLBACK")
    assessment = row['assessment']
    if assessment is not None and not re.fullmatch(r'[0-6]', assessment):
        raise ValueError(f'assessment {assessment!r} is not 0-6')
    density = row['breast_density']
    if density is not None and density not in '1234':
        raise ValueError(f'breast density {density!r} is not 1-4')
    for col in ('image file path', 'cropped image file path', 'ROI mask file path'):
        if not row[col] or len(row[col].split('/')) < 2:
            raise ValueError(f'{col} {row[col]!r} is not a TCIA path')
    birads = int(assessment) if assessment in ('3', '4', '5') else None
    return dict(side=side, view=view, pathology=pathology, birads=birads, birads_raw=assessment,
                density=density_letter(density))


def read_release(root: str, log: Optional[ParseLog] = None) -> Dict[str, ImageRecord]:
    """The four CSVs and the download's folders -> one record per mammogram (boxes still to be read from masks)."""
    log = log or ParseLog()
    folders = subject_folders(root)
    if not folders:
        raise ConversionError(f'{root}: no CBIS-DDSM subject folders (Mass-Training_P_..., Calc-Test_P_...) found')
    records: Dict[str, ImageRecord] = {}
    for path, kind, split in find_csvs(root):
        for line, row in _rows(path, log):
            where = f'{path} line {line}'
            try:
                p = _parse(row, kind)
            except ValueError as exc:
                log.row(f'{where}: {exc}')
                continue
            subject = row['image file path'].split('/')[0]
            folder = folders.get(subject)
            source = _image_file(folder, row['image file path']) if folder else None
            if source is None:
                log.row(f'{where}: image {subject} not found under {root}')
                continue
            key = check_id(f"{row['patient_id']}_{row['left or right breast']}_{p['view']}", 'image')
            rec = records.get(key)
            if rec is None:
                rec = records[key] = ImageRecord(
                    source_id=key, study_id=row['patient_id'], patient_id=row['patient_id'], source=source,
                    laterality=p['side'], view_position=p['view'], split=split,
                    fields=dict(breast_density=p['density'], subject_ids=[subject],
                                study_uid=row['image file path'].split('/')[1],
                                series_uid=(row['image file path'].split('/') + [''])[2]), first_line=line)
            elif rec.split != split:
                log.row(f'{where}: {key} is {split} here but {rec.split} in another CSV')
                continue
            elif subject not in rec.fields['subject_ids']:
                rec.fields['subject_ids'].append(subject)  # the same view in the mass and calc CSVs
            candidates = []
            for col in ('cropped image file path', 'ROI mask file path'):
                roi = folders.get(row[col].split('/')[0])
                candidates += [f for f in (_dicoms(roi) if roi else []) if f not in candidates]
            rec.pending.append(PendingBox([CATEGORY[kind]], p['birads'], p['birads_raw'], p['pathology'], candidates,
                                          f"{where} ({subject} abnormality {row['abnormality id']})"))
    if not records:
        raise ConversionError(f'{root}: no usable rows')
    return records


def locate(spec: PendingBox, image) -> tuple:
    """The core's hook, in the worker: (xyxy of the mask's foreground, None) or (None, reason). The candidate that
    is binary {0, 255} (or {0, 1}) at the image's size is the mask; a binary candidate of another size is the known
    CBIS-DDSM trait of a mask that does not fit its image."""
    import pydicom

    from mammo_det.io import ImageError, read_image

    width, height = image.width, image.height
    seen_sizes = []
    for path in spec.sources:
        try:
            head = pydicom.dcmread(path, stop_before_pixels=True)
            rows, cols = int(head.Rows), int(head.Columns)
        except Exception:  # noqa: BLE001 - a missing or broken candidate is just not the mask
            continue
        if (cols, rows) != (width, height):
            if rows * cols > 0.25 * width * height:  # a crop is small; this looks like a mask of another size
                seen_sizes.append(f'{cols}x{rows}')
            continue
        try:
            px = read_image(path).pixels
        except ImageError:
            continue
        values = np.unique(px[::7, ::7])
        if not set(values.tolist()) <= {0, 1, 255}:
            continue  # the full-size crop of a swapped pair, or an image
        # The extent from row and column projections: a tenth of the cost of np.nonzero on a full-size mask.
        ys, xs = np.flatnonzero(px.any(axis=1)), np.flatnonzero(px.any(axis=0))
        if not len(xs):
            return None, f'{spec.where}: the mask {path} is empty'
        return (float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1)), None
    if seen_sizes:
        return None, (f'{spec.where}: mask size {", ".join(seen_sizes)} differs from the image\'s {width}x{height} '
                      '(a known CBIS-DDSM trait; the abnormality is left out)')
    return None, f'{spec.where}: no mask found among {spec.sources}'
