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

Labels follow EMBED's clinical legend (``AWS_Open_Data_Clinical_Legend.csv``) through one table,
:data:`LABELS` (printed in ``docs/datasets.md``). EMBED does not link an ROI to a finding, so an image's ROIs carry
every category of the findings on its side. A code without a category of ours (``massshape`` T, the typically
benign calcification morphologies) labels nothing: an ROI whose side has only such findings is left out, and every
left-out label is counted by code in ``report.json`` (``left_out_labels``). Generic (G) and punctate (P)
calcifications are Suspicious Calcification when the finding's assessment is BI-RADS 3 or higher (``asses``
P, S, M, K), else left out as benign. Every annotation keeps the codes of its side's findings (``embed_codes``:
massshape, calcfind, asses, path_severity, side), so another mapping can be rebuilt from the COCO files.
``birads`` is the highest assessment of the labelling findings (``asses`` P/S/M = 3/4/5; A/N/B/K/X -> none), the
letters in ``birads_raw``; ``pathology`` malignant when a finding's ``path_severity`` is 0 or 1 (invasive,
non-invasive cancer), else benign when one is 4 or 5 (benign, normal tissue), else null. ``tissueden`` 1-4 ->
density A-D. No official split: a seeded, patient-level stratified one.
"""
from __future__ import annotations

import glob
import os
import re
from typing import Dict, List, NamedTuple, Optional

from mammo_det.vocab import density_letter

from .records import Box, ConversionError, ImageRecord, ParseLog, check_id
from .tables import read_table

ASSES = {'A': 0, 'N': 1, 'B': 2, 'P': 3, 'S': 4, 'M': 5, 'K': 6}  # X: no assessment
MALIGNANT, BENIGN = ('0', '1'), ('4', '5')
# The finding's assessment from which a generic or punctate calcification counts as suspicious (BI-RADS >= 3).
BY_ASSESSMENT = 'BI-RADS >= 3'
# (field, code) -> (the legend's meaning, our category; None: no category of ours, left out and counted;
# BY_ASSESSMENT: Suspicious Calcification when the finding is assessed BI-RADS 3 or higher, else left out).
LABELS = {
    ('massshape', 'G'): ('generic', 'Mass'),
    ('massshape', 'R'): ('round', 'Mass'),
    ('massshape', 'O'): ('oval', 'Mass'),
    ('massshape', 'X'): ('irregular', 'Mass'),
    ('massshape', 'Q'): ('questioned architectural distortion', 'Architectural Distortion'),
    ('massshape', 'A'): ('architectural distortion', 'Architectural Distortion'),
    ('massshape', 'T'): ('asymmetric tubular structure / solitary dilated duct', None),
    ('massshape', 'N'): ('intramammary lymph node', 'Suspicious Lymph Node'),
    ('massshape', 'B'): ('global asymmetry', 'Global Asymmetry'),
    ('massshape', 'F'): ('focal asymmetry', 'Focal Asymmetry'),
    ('massshape', 'S'): ('asymmetry', 'Asymmetry'),
    ('massshape', 'V'): ('developing asymmetry', 'Asymmetry'),
    ('massshape', 'Y'): ('lymph node', 'Suspicious Lymph Node'),
    ('calcfind', 'A'): ('amorphous', 'Suspicious Calcification'),
    ('calcfind', 'H'): ('coarse heterogeneous', 'Suspicious Calcification'),
    ('calcfind', 'I'): ('fine pleomorphic', 'Suspicious Calcification'),
    ('calcfind', 'K'): ('pleomorphic', 'Suspicious Calcification'),
    ('calcfind', 'F'): ('fine-linear (casting)', 'Suspicious Calcification'),
    ('calcfind', 'B'): ('fine linear-branching (casting)', 'Suspicious Calcification'),
    ('calcfind', 'G'): ('generic', BY_ASSESSMENT),
    ('calcfind', 'P'): ('punctate', BY_ASSESSMENT),
    ('calcfind', '9'): ('benign', None),
    ('calcfind', 'C'): ('coarse popcorn-like', None),
    ('calcfind', 'D'): ('dystrophic', None),
    ('calcfind', 'E'): ('rim', None),
    ('calcfind', 'L'): ('large rodlike', None),
    ('calcfind', 'M'): ('milk of calcium', None),
    ('calcfind', 'J'): ('oil cyst', None),
    ('calcfind', 'R'): ('round', None),
    ('calcfind', 'S'): ('skin', None),
    ('calcfind', 'O'): ('lucent-centered', None),
    ('calcfind', 'U'): ('suture', None),
    ('calcfind', 'V'): ('vascular', None),
    ('calcfind', 'Q'): ('coarse', None),
}
CODE_FIELDS = ('massshape', 'calcfind', 'asses', 'path_severity', 'side')  # kept on each annotation
DATASET = 'embed'
DESCRIPTION = 'EMBED converted by mammo-det'


def _table(root: str, what: str) -> str:
    hits = sorted(glob.glob(os.path.join(root, f'*EMBED_OpenData_{what}*.csv')) +
                  glob.glob(os.path.join(root, 'tables', f'*EMBED_OpenData_{what}*.csv')))
    if not hits:
        raise ConversionError(f'{root}: no EMBED_OpenData_{what}.csv (at the root or in tables/)')
    return sorted(hits, key=lambda p: ('reduced' in os.path.basename(p), p))[0]


def _read(path: str, need: tuple, log: ParseLog) -> List[tuple]:
    # EMBED's tables leave trailing empty cells out of some rows: read those cells as empty
    return list(read_table(path, need, log=log, pad_short=True))


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


def categories(finding: dict) -> tuple:
    """(our categories of a clinical row, its labels that have none: 'calcfind V (vascular)', ...)."""
    cats, left_out = [], []
    for field in ('massshape', 'calcfind'):
        code = finding.get(field)
        if not code:
            continue
        meaning, cat = LABELS[(field, code)]
        if cat == BY_ASSESSMENT:
            cat = 'Suspicious Calcification' if ASSES.get(finding.get('asses'), 0) >= 3 else None
        if cat is None:
            left_out.append(f'{field} {code} ({meaning})')
        elif cat not in cats:
            cats.append(cat)
    return cats, left_out


def _read_findings(path: str, log: ParseLog) -> Dict[tuple, list]:
    """(empi_anon, acc_anon) -> the exam's clinical rows; a row with a code outside the legend is a bad row."""
    findings: Dict[tuple, list] = {}
    for line, row in _read(path, ('empi_anon', 'acc_anon', 'side', 'asses', 'tissueden'), log):
        bad = [f"asses {row['asses']!r}"] if row['asses'] and row['asses'] not in ASSES and row['asses'] != 'X' else []
        bad += [f'{field} {row[field]!r}' for field in ('massshape', 'calcfind')
                if row.get(field) and (field, row[field]) not in LABELS]
        if bad:
            log.row(f"{path} line {line}: {', '.join(bad)} not in EMBED's clinical legend")
            continue
        findings.setdefault((row['empi_anon'], row['acc_anon']), []).append(row)
    return findings


class ImageIds(NamedTuple):
    """Who a metadata row's image is, validated."""
    source: str  # the DICOM file
    key: str  # its SOP Instance UID (the file stem), our source id
    study: str  # acc_anon
    patient: str  # empi_anon
    rois: list  # the ROI_coords boxes


def _image_ids(row: dict, root: str, bases: List[str]) -> ImageIds:
    """The :class:`ImageIds` of a metadata row; ValueError naming a bad field."""
    if row['ImageLateralityFinal'] not in ('L', 'R'):
        raise ValueError(f"ImageLateralityFinal {row['ImageLateralityFinal']!r} is not L or R")
    rois = parse_roi_coords(row['ROI_coords'])
    source = _resolve(bases, row['anon_dicom_path'])
    if source is None:
        raise ValueError(f"{row['anon_dicom_path']} not found under {root}")
    key = check_id(os.path.splitext(os.path.basename(source))[0], 'SOP instance UID')
    return ImageIds(source=source, key=key, study=check_id(row['acc_anon'], 'acc_anon'),
                    patient=check_id(row['empi_anon'], 'empi_anon'), rois=rois)


def _not_converted(row: dict, where: str) -> Optional[str]:
    """Why an image of the metadata table is not converted (None: it is)."""
    if row['FinalImageType'].lower() != '2d':
        return f"{where}: FinalImageType {row['FinalImageType']!r} (only 2D images are converted)"
    if row['spot_mag'] not in ('', '0', '0.0'):
        return f'{where}: a spot compression or magnification view'
    if row['ViewPosition'] not in ('CC', 'MLO'):
        return f"{where}: ViewPosition {row['ViewPosition']!r} (only CC and MLO are converted)"
    return None


def _boxes(rois: List[tuple], side: List[dict], where: str, line: int, log: ParseLog) -> List[Box]:
    """The image's ROIs labelled by the findings on its side (every category of them)."""
    labels = [categories(f) for f in side]
    cats = list(dict.fromkeys(c for cs, _ in labels for c in cs))
    for _, left_out in labels:
        for label in left_out:
            log.leave_out(label, len(rois))
    if not cats:
        what = 'only findings without a category of ours' if side else 'no finding'
        log.boxes.append(f'{where}: {len(rois)} ROI(s) but {what}; left out')
        return []
    labelled = [f for f, (cs, _) in zip(side, labels) if cs]
    levels = [ASSES[f['asses']] for f in labelled if ASSES.get(f['asses']) in (3, 4, 5)]
    sev = {f.get('path_severity', '') for f in labelled}
    pathology = 'malignant' if sev & set(MALIGNANT) else 'benign' if sev & set(BENIGN) else None
    raw = ','.join(sorted({f['asses'] for f in labelled if f['asses']})) or None
    codes = [{k: f.get(k, '') for k in CODE_FIELDS} for f in side]
    boxes = []
    for x0, y0, x1, y1 in rois:
        if x1 <= x0 or y1 <= y0:
            log.boxes.append(f'{where}: empty ROI ({y0}, {x0}, {y1}, {x1})')
            continue
        boxes.append(Box(cats, max(levels) if levels else None, (x0, y0, x1, y1), line, where=where, birads_raw=raw,
                         pathology=pathology, extra=dict(embed_codes=codes)))
    return boxes


def read_release(root: str, log: Optional[ParseLog] = None) -> Dict[str, ImageRecord]:
    log = log or ParseLog()
    clinical_path, meta_path = _table(root, 'clinical'), _table(root, 'metadata')
    findings = _read_findings(clinical_path, log)
    records: Dict[str, ImageRecord] = {}
    bases = [root] + sorted(os.path.join(root, d) for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    need = ('anon_dicom_path', 'empi_anon', 'acc_anon', 'FinalImageType', 'ImageLateralityFinal', 'ViewPosition',
            'spot_mag', 'ROI_coords')
    for line, row in _read(meta_path, need, log):
        where = f'{meta_path} line {line}'
        skip = _not_converted(row, where)
        if skip:
            log.images.append(skip)
            continue
        try:
            ids = _image_ids(row, root, bases)
        except ValueError as exc:
            log.row(f'{where}: {exc}')
            continue
        lat = row['ImageLateralityFinal']
        exam = findings.get((row['empi_anon'], row['acc_anon']), [])
        side = [f for f in exam if f['side'] in (lat, 'B', '')]
        suspicious = [f for f in side if categories(f)[0] and ASSES.get(f['asses'], 0) in (3, 4, 5)]
        rois = ids.rois
        if suspicious and not rois:
            log.images.append(f'{where}: a BI-RADS 3-5 finding on side {lat} but no ROI on the image; left out')
            continue
        boxes = _boxes(rois, side, f'{where} (side {lat})', line, log) if rois else []
        dens = {f['tissueden'] for f in exam if f['tissueden'] in ('1', '2', '3', '4')}
        exam_birads = [ASSES[f['asses']] for f in side if f['asses'] in ASSES]
        records[ids.key] = ImageRecord(
            source_id=ids.key, study_id=ids.study, patient_id=ids.patient, source=ids.source, laterality=lat,
            view_position=row['ViewPosition'],
            fields=dict(breast_density=density_letter(min(dens)) if dens else None,
                        breast_birads=max(exam_birads) if exam_birads else None, acc_anon=ids.study),
            boxes=boxes, first_line=line)
    if not records:
        raise ConversionError(f'{meta_path}: no usable 2D images')
    return records
