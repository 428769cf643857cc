"""INbreast (``AllDICOMs/``, ``AllXML/`` plists, ``INbreast.csv``) -> COCO, through the conversion core.

The layout and its traps: ``docs/datasets.md``. Handled here:

* DICOMs named ``<FileName>_<patient hex>_MG_<L|R>_<CC|ML>_ANON.dcm`` (``ML`` in names, ``MLO`` in the CSV);
  ``INbreast.csv`` is ``;``-separated, its cells stripped, ``Bi-Rads`` read as text (4a, 4b, 4c);
* the OsiriX XML plist of an image (``AllXML/<FileName>.xml``; normal images have none): each ROI's ``Point_px``
  ("(x, y)" strings, top-left origin) becomes a box, the polygon's extent clipped to the image; a ROI of one or two
  points (a single-point calcification) becomes a square of ``SINGLE_POINT_MM`` (1 mm) a side around its centre,
  through the DICOM's Pixel Spacing (0.07 mm when absent); a ROI left with nothing inside the image, or with a
  name outside the table below, is listed in ``report.json`` (``skipped_boxes``); ``NumberOfPoints`` or
  ``NumberOfROIs`` disagreeing with the lists go to ``warnings`` (the lists are used).

ROI names (with the misspellings of the release): Mass -> Mass; Calcification, Calcifications, Cluster, Point 1,
Point 3, Unnamed -> Suspicious Calcification; Distortion, Spiculated Region, Spiculated region, Espiculated Region ->
Architectural Distortion; Asymmetry, Assymetry -> Asymmetry. BI-RADS is per image in INbreast: every box of an
image carries it (4a/4b/4c -> 4; 3, 4, 5 kept; 1, 2, 6 -> null), the raw value in ``birads_raw``; the image's
``breast_birads`` is its number (4a -> 4). ACR 1-4 -> density A-D. No pathology per box (null). No official split:
a seeded, patient-level stratified one.
"""
from __future__ import annotations

import glob
import os
import plistlib
import re
from typing import Dict, List, Optional

from mammo_det.vocab import density_letter

from .records import Box, ConversionError, ImageRecord, ParseLog, check_id
from .tables import read_table

SINGLE_POINT_MM = 1.0
DEFAULT_SPACING_MM = 0.07  # INbreast's detector pixel
NAMES = {'mass': 'Mass', 'calcification': 'Suspicious Calcification', 'calcifications': 'Suspicious Calcification',
         'cluster': 'Suspicious Calcification', 'point 1': 'Suspicious Calcification',
         'point 3': 'Suspicious Calcification', 'unnamed': 'Suspicious Calcification',
         'distortion': 'Architectural Distortion', 'spiculated region': 'Architectural Distortion',
         'espiculated region': 'Architectural Distortion', 'asymmetry': 'Asymmetry', 'assymetry': 'Asymmetry'}
FILE_RE = re.compile(r'^(\d+)_([0-9A-Za-z]+)_MG_([LR])_(CC|MLO?)_ANON\.dcm$', re.IGNORECASE)
DATASET = 'inbreast'
DESCRIPTION = 'INbreast converted by mammo-det'


def _birads(raw: str) -> tuple:
    """(box BI-RADS 3/4/5 or None, breast BI-RADS number or None) of INbreast's text."""
    m = re.fullmatch(r'([0-6])([abc]?)', raw.strip().lower())
    if not m:
        raise ValueError(f'Bi-Rads {raw!r} is not 0-6 (4 may carry a, b or c)')
    n = int(m.group(1))
    return (n if n in (3, 4, 5) else None), n


def _read_csv(root: str) -> List[tuple]:
    path = os.path.join(root, 'INbreast.csv')
    if not os.path.exists(path):
        hint = ' (there is INbreast.xls: save it as INbreast.csv with ";" separators)' \
            if os.path.exists(os.path.join(root, 'INbreast.xls')) else ''
        raise ConversionError(f'{root}: no INbreast.csv{hint}')
    rows = read_table(path, ('Laterality', 'View', 'File Name', 'ACR', 'Bi-Rads'), delimiter=';', pad_short=True,
                      encoding_errors='replace')
    return [(path, line, row) for line, row in rows]


def _points(roi: dict) -> List[tuple]:
    pts = []
    for p in roi.get('Point_px', []):
        x, y = (float(v) for v in str(p).strip().strip('()').split(','))
        pts.append((x, y))
    return pts


def read_rois(xml_path: str, spacing: float, birads: Optional[int], birads_raw: str,
              skipped: list, warnings: list) -> List[Box]:
    """The boxes of one image's XML plist."""
    try:
        with open(xml_path, 'rb') as fh:
            image = plistlib.load(fh)['Images'][0]
    except Exception as exc:  # noqa: BLE001 - plistlib raises several types for a broken file
        raise ConversionError(f'{xml_path}: not an OsiriX ROI plist ({exc})') from None
    rois = image.get('ROIs', [])
    if image.get('NumberOfROIs') is not None and image['NumberOfROIs'] != len(rois):
        warnings.append(f"{xml_path}: NumberOfROIs {image['NumberOfROIs']} but {len(rois)} ROIs (all used)")
    boxes = []
    half = SINGLE_POINT_MM / spacing / 2
    for k, roi in enumerate(rois):
        where = f"{xml_path} ROI {k} ({roi.get('Name')!r})"
        category = NAMES.get(str(roi.get('Name', '')).strip().lower())
        if category is None:
            skipped.append(f'{where}: unknown ROI name; left out')
            continue
        try:
            pts = _points(roi)
        except ValueError:
            skipped.append(f'{where}: Point_px is not "(x, y)" text; left out')
            continue
        if not pts:
            skipped.append(f'{where}: no points; left out')
            continue
        if roi.get('NumberOfPoints') is not None and roi['NumberOfPoints'] != len(pts):
            warnings.append(f"{where}: NumberOfPoints {roi['NumberOfPoints']} but {len(pts)} points (all used)")
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        if len(pts) <= 2:  # a single-point calcification: a square of SINGLE_POINT_MM around it
            cx, cy = sum(xs) / len(xs), sum(ys) / len(ys)
            x0, y0, x1, y1 = cx - half, cy - half, cx + half, cy + half
        else:
            x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
        boxes.append(Box([category], birads, (x0, y0, x1, y1), k, where=where, birads_raw=birads_raw,
                         pathology=None))
    return boxes


def read_release(root: str, log: Optional[ParseLog] = None) -> Dict[str, ImageRecord]:
    import pydicom

    log = log or ParseLog()
    dicoms = {}
    for f in sorted(glob.glob(os.path.join(root, 'AllDICOMs', '*.dcm'))):
        m = FILE_RE.match(os.path.basename(f))
        if m:
            dicoms[m.group(1)] = (f, m)
    if not dicoms:
        raise ConversionError(f'{root}: no AllDICOMs/<FileName>_<id>_MG_<side>_<view>_ANON.dcm files')
    records: Dict[str, ImageRecord] = {}
    for path, line, row in _read_csv(root):
        where = f'{path} line {line}'
        name = row['File Name']
        try:
            if name not in dicoms:
                raise ValueError(f'File Name {name!r} has no DICOM in AllDICOMs/')
            f, m = dicoms[name]
            lat, view = row['Laterality'], row['View']
            if lat not in ('L', 'R') or view not in ('CC', 'MLO'):
                raise ValueError(f'Laterality/View {lat!r}/{view!r} are not L/R and CC/MLO')
            if (m.group(3).upper(), 'MLO' if m.group(4).upper().startswith('ML') else 'CC') != (lat, view):
                raise ValueError(f'Laterality/View {lat}/{view} disagree with the file name {os.path.basename(f)}')
            birads, breast_birads = _birads(row['Bi-Rads'])
            acr = row['ACR']
            if acr and acr not in '1234':
                raise ValueError(f'ACR {acr!r} is not 1-4')
            check_id(name, 'File Name')
            patient = check_id(m.group(2), 'patient id')
            head = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=['Rows', 'Columns', 'PixelSpacing'])
            width, height = int(head.Columns), int(head.Rows)
            spacing = float(head.PixelSpacing[0]) if head.get('PixelSpacing') else DEFAULT_SPACING_MM
        except (ValueError, TypeError, AttributeError) as exc:
            log.row(f'{where}: {exc}')
            continue
        xml = os.path.join(root, 'AllXML', f'{name}.xml')
        boxes = read_rois(xml, spacing, birads, row['Bi-Rads'], log.boxes, log.warnings) \
            if os.path.exists(xml) else []
        records[name] = ImageRecord(source_id=name, study_id=patient, patient_id=patient, source=f, laterality=lat,
                                    view_position=view, width=width, height=height,
                                    fields=dict(breast_birads=breast_birads, birads_raw=row['Bi-Rads'],
                                                breast_density=density_letter(acr),
                                                file_name_id=name),
                                    boxes=boxes, first_line=line)
    if not records:
        raise ConversionError(f'{root}: no usable rows')
    return records
