"""Synthetic releases of the public mammography datasets in their real layouts, with their pitfalls planted.

``mammo-det synth ROOT --format cbis-ddsm|inbreast|mias|embed``. The layouts, file formats and traps follow
``shared/DATASETS.md``; nothing comes from the real data. Lesions are drawn by the VinDr-Mammo synthesiser (bright
inside their boxes, shaped by category and BI-RADS), so a model trained on one synthetic set finds them in another.

Each writer returns the truth: per image key (the converter's ``source_id``) its split (or None), laterality,
view and boxes (original pixels, category, BI-RADS, raw assessment, pathology), and the pitfalls it planted with
the boxes or images the converter must leave out (``expected_skips``).
"""
from __future__ import annotations

import hashlib
import os
from typing import List, Optional

import cv2
import numpy as np

from mammo_det.fileio import atomic_path, write_text

from .synth import Finding, SynthImage, _place, render_pixels

FORMATS = ('cbis-ddsm', 'inbreast', 'mias', 'embed')


def _uid(*parts) -> str:
    """A DICOM UID made from parts (digits only, under 64 characters)."""
    digits = str(int(hashlib.md5('/'.join(map(str, parts)).encode()).hexdigest(), 16))[:30]
    return f'1.3.6.1.4.1.9590.100.1.2.{digits}'


def _image(key: str, lat: str, view: str, rows: int, cols: int, seed: int, lesions: List[tuple],
           density: str = 'C') -> tuple:
    """(display image in [0, 1], boxes): lesions given as (category, BI-RADS, position, size factor), placed in the
    breast as the VinDr synthesiser places them."""
    rng = np.random.default_rng(seed)
    geometry = SynthImage(key, key, key, lat, view, 'siemens', rows, cols, 4, density, 'training', seed)
    boxes = []
    for cat, _, pos, size in lesions:
        x0, y0, x1, y1 = _place(geometry, cat, np.asarray(pos, float), size, rows / 3518, rng)
        boxes.append((max(x0, 0.0), max(y0, 0.0), min(x1, float(cols)), min(y1, float(rows))))
    findings = [(cat, birads, box) for (cat, birads, _, _), box in zip(lesions, boxes)]
    return _render_boxes(key, lat, view, rows, cols, seed, findings, density), boxes


def _render_boxes(key: str, lat: str, view: str, rows: int, cols: int, seed: int, findings: List[tuple],
                  density: str = 'C') -> np.ndarray:
    """Display image in [0, 1] with lesions drawn in given boxes: findings as (category, BI-RADS, xyxy)."""
    img = SynthImage(key, key, key, lat, view, 'siemens', rows, cols, 4, density, 'training', seed)
    img.findings = [Finding([c], b, tuple(float(v) for v in box)) for c, b, box in findings]
    return render_pixels(img)


def _save_dicom(path: str, pixels: np.ndarray, uid_parts: tuple, **tags) -> None:
    """A Secondary Capture DICOM, implicit VR little endian, MONOCHROME2 (as CBIS-DDSM's), or with ``tags``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ImplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.7'
    meta.MediaStorageSOPInstanceUID = _uid('sop', *uid_parts)
    meta.TransferSyntaxUID = tags.pop('transfer_syntax', ImplicitVRLittleEndian)
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = 'MG'
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = 'MONOCHROME2'
    bits = 8 * pixels.dtype.itemsize
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)


def _csv_text(rows: List[list]) -> str:
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator='\n').writerows(rows)
    return buf.getvalue()


# --- CBIS-DDSM -------------------------------------------------------------------------------------------------

CBIS_MASS = ['patient_id', 'breast_density', 'left or right breast', 'image view', 'abnormality id',
             'abnormality type', 'mass shape', 'mass margins', 'assessment', 'pathology', 'subtlety',
             'image file path', 'cropped image file path', 'ROI mask file path']
CBIS_CALC = ['patient_id', 'breast density', 'left or right breast', 'image view', 'abnormality id',
             'abnormality type', 'calc type', 'calc distribution', 'assessment', 'pathology', 'subtlety',
             'image file path', 'cropped image file path', 'ROI mask file path']


def write_cbis_ddsm(root: str, patients: int = 12, seed: int = 0, scale: float = 0.1,
                    layout: str = 'descriptive') -> dict:
    """A CBIS-DDSM download (``layout``: 'descriptive' current NBIA, or 'classic') and its four CSVs.

    Planted: crop and mask columns swapped (every third abnormality); a ROI series holding crop and mask as
    1-1/1-2 in either order (descriptive); a mask of another size than its image and a missing mask (both left
    out, reported); several abnormalities on one image; the same view in the mass and the calc CSVs; newlines and
    spaces in cells; both density column spellings; ``N/A`` cells.
    """
    if layout not in ('descriptive', 'classic'):
        raise ValueError(f"layout must be 'descriptive' or 'classic', got {layout!r}")
    rng = np.random.default_rng(seed)
    base = os.path.join(root, 'manifest-1600000000000', 'CBIS-DDSM') if layout == 'descriptive' else \
        os.path.join(root, 'CBIS-DDSM')
    truth: dict = dict(images={}, expected_skips=[], pitfalls={})
    rows = {('mass', 'train'): [], ('mass', 'test'): [], ('calcification', 'train'): [],
            ('calcification', 'test'): []}
    rows_px, cols_px = int(4600 * scale), int(3000 * scale)
    abnormality = 0
    both_done = False
    for p in range(1, patients + 1):
        pid = f'P_{p:05d}'
        split = 'test' if p % 4 == 0 else 'train'
        side = 'LEFT' if p % 2 else 'RIGHT'
        views = ['CC', 'MLO'] if p % 3 else ['CC']
        for view in views:
            kinds = ['mass'] if (p + len(view)) % 2 else ['calcification']
            if not both_done and view == 'CC' and p >= 2:
                kinds, both_done = ['mass', 'calcification'], True  # the same view in both CSVs
                truth['pitfalls']['mass_and_calc_same_view'] = f'{pid}_{side}_{view}'
            lesions = []
            for kind in kinds:
                for _ in range(2 if p == 1 else 1):  # patient 1: two abnormalities on one image
                    cat = 'Mass' if kind == 'mass' else 'Suspicious Calcification'
                    lesions.append((cat, int(rng.choice([2, 3, 4, 5])), rng.uniform(0.15, 0.85, 2),
                                    rng.uniform(0.8, 1.2), kind))
            key = f'{pid}_{side}_{view}'
            pixels, boxes = _image(key, side[0], view, rows_px, cols_px, int(rng.integers(1 << 30)),
                                   [(c, b if b >= 3 else None, pos, sz) for c, b, pos, sz, _ in lesions])
            stored = (2000 + pixels * 60000).astype(np.uint16)
            image_truth = truth['images'][key] = dict(split=split, laterality=side[0], view=view, boxes=[],
                                                      shape=(rows_px, cols_px))
            subjects = {}
            abn_ids = {}
            for (cat, assessment, _, _, kind), box in zip(lesions, boxes):
                split_word = 'Training' if split == 'train' else 'Test'
                subject = f"{'Mass' if kind == 'mass' else 'Calc'}-{split_word}_{pid}_{side}_{view}"
                study, series = _uid('study', subject), _uid('series', subject)
                if subject not in subjects:
                    subjects[subject] = (study, series)
                    _cbis_file(base, layout, subject, study, series, 'full mammogram images', '1-1', stored,
                               PatientID=subject, Laterality=side[0], PatientOrientation=view,
                               SeriesDescription='full mammogram images')
                abn_ids[subject] = abn_ids.get(subject, 0) + 1
                abnormality += 1
                abn = abn_ids[subject]
                roi_subject = f'{subject}_{abn}'
                r_study, r_series = _uid('study', roi_subject), _uid('series', roi_subject)
                x0, y0, x1, y1 = box
                mask = np.zeros(stored.shape, np.uint8)
                cv2.ellipse(mask, (int(round((x0 + x1) / 2)), int(round((y0 + y1) / 2))),
                            (max(int(round((x1 - x0) / 2)), 1), max(int(round((y1 - y0) / 2)), 1)), 0, 0, 360, 255,
                            -1)
                ys, xs = np.nonzero(mask)
                true_box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
                crop = stored[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))]
                plant = None
                if abnormality == 3:
                    plant = 'mask-size'
                    mask = cv2.resize(mask, (int(mask.shape[1] * 0.95), int(mask.shape[0] * 0.9)),
                                      interpolation=cv2.INTER_NEAREST)
                elif abnormality == 5:
                    plant = 'missing-mask'
                mask_first = abnormality % 2 == 0
                if plant != 'missing-mask':
                    _cbis_file(base, layout, roi_subject, r_study, r_series, 'ROI mask images',
                               '1-1' if mask_first else '1-2', mask, PatientID=roi_subject)
                _cbis_file(base, layout, roi_subject, r_study, r_series, 'ROI mask images',
                           '1-2' if mask_first else '1-1', crop, PatientID=roi_subject)
                birads_raw = str(assessment)
                birads = assessment if assessment >= 3 else None
                pathology = ['MALIGNANT', 'BENIGN', 'BENIGN_WITHOUT_CALLBACK'][abnormality % 3]
                entry = dict(category=cat, birads=birads, birads_raw=birads_raw,
                             pathology='malignant' if pathology == 'MALIGNANT' else 'benign', xyxy=true_box,
                             planted=plant)
                image_truth['boxes'].append(entry)
                if plant:
                    truth['expected_skips'].append(dict(key=key, reason=plant, roi=roi_subject))
                img_path = f'{subject}/{study}/{series}/000000.dcm\n'  # a newline inside the cell, as released
                crop_path = f'{roi_subject}/{r_study}/{r_series}/000000.dcm'
                mask_path = f'{roi_subject}/{r_study}/{r_series}/000001.dcm\n'
                if abnormality % 3 == 0:
                    crop_path, mask_path = mask_path, crop_path  # the columns swapped
                    truth['pitfalls'].setdefault('swapped_columns', []).append(roi_subject)
                density = str(int(rng.integers(1, 5)))
                descriptive = (['IRREGULAR', 'SPICULATED'] if kind == 'mass' else ['PLEOMORPHIC', 'N/A'])
                rows[(kind, split)].append([pid, density, side, view, abn, kind, *descriptive, birads_raw,
                                            f' {pathology} ', str(int(rng.integers(1, 6))), img_path, crop_path,
                                            mask_path])
    for (kind, split), body in rows.items():
        header = CBIS_MASS if kind == 'mass' else CBIS_CALC
        name = f"{'mass' if kind == 'mass' else 'calc'}_case_description_{split}_set.csv"
        write_text(os.path.join(root, name), _csv_text([header] + body))
    return truth


def _cbis_file(base: str, layout: str, subject: str, study: str, series: str, description: str, name: str,
               pixels: np.ndarray, **tags) -> None:
    if layout == 'classic':
        folder = os.path.join(base, subject, study, series)
        fname = {'1-1': '000000.dcm', '1-2': '000001.dcm'}[name]
    else:
        folder = os.path.join(base, subject, f'07-20-2016-DDSM-NA-{study[-5:]}',
                              f'1.000000-{description}-{series[-5:]}')
        fname = f'{name}.dcm'
    _save_dicom(os.path.join(folder, fname), pixels, (subject, name), **tags)


# --- mini-MIAS -------------------------------------------------------------------------------------------------

MIAS_CATEGORY = {'CALC': 'Suspicious Calcification', 'CIRC': 'Mass', 'SPIC': 'Mass', 'MISC': 'Mass',
                 'ARCH': 'Architectural Distortion', 'ASYM': 'Asymmetry'}


def write_mias(root: str, films: int = 16, seed: int = 0) -> dict:
    """mini-MIAS: 1024 x 1024 8-bit binary PGMs and Info.txt (bottom-left origin).

    Planted: header and note lines; NORM rows of 3 tokens; a film with two abnormalities (two rows); a film whose
    only abnormality has no position (4 tokens) and one with a located and an unlocated abnormality (both left
    out, reported); a circle running past the film's edge (clipped).
    """
    rng = np.random.default_rng(seed)
    size = 1024
    lines = ['MIAS database: reference, background tissue, class, severity, x, y (origin bottom-left), radius',
             '(synthetic, written by mammo-det)', '']
    truth: dict = dict(images={}, expected_skips=[], pitfalls={})
    classes = list(MIAS_CATEGORY)
    for n in range(1, films + 1):
        ref = f'mdb{n:03d}'
        lat = 'L' if n % 2 == 0 else 'R'
        tissue = 'FGD'[int(rng.integers(3))]
        if n % 3 == 1:
            plan = []  # normal
        elif n == 2:
            plan = ['CIRC', 'CALC']  # two rows for one film
        else:
            plan = [classes[int(rng.integers(len(classes)))]]
        findings, rows = [], []
        for k, cls in enumerate(plan):
            r = int(rng.integers(25, 60))
            cx = int(rng.integers(150, 600)) if lat == 'L' else int(rng.integers(424, 874))
            cy = int(rng.integers(200, 824))
            if n == 5 and k == 0:
                cx = 1024 - 20 if lat == 'R' else 20  # runs past the edge: clipped
            sev = 'BM'[int(rng.integers(2))]
            box = (max(cx - r, 0), max(cy - r, 0), min(cx + r, size), min(cy + r, size))
            findings.append((MIAS_CATEGORY[cls], None, box, sev, cls))
            rows.append(f'{ref} {tissue} {cls} {sev} {cx} {size - cy} {r}')
        unlocated = None
        if n == 4:
            rows, unlocated = [f'{ref} {tissue} CALC B'], 'only'  # no position at all
        elif n == 7:
            rows.append(f'{ref} {tissue} MISC M')  # a second abnormality without a position
            unlocated = 'partial'
        if not rows:
            rows = [f'{ref} {tissue} NORM']
        lines += rows
        pixels = _render_boxes(ref, lat, 'MLO', size, size, int(rng.integers(1 << 30)),
                               [(c, 4, box) for c, _, box, _, _ in findings])
        os.makedirs(root, exist_ok=True)
        with atomic_path(os.path.join(root, f'{ref}.pgm')) as tmp:
            cv2.imwrite(tmp + '.pgm', np.rint(pixels * 255).astype(np.uint8))
            os.replace(tmp + '.pgm', tmp)
        if unlocated:
            truth['expected_skips'].append(dict(key=ref, reason=f'unlocated-{unlocated}'))
        truth['images'][ref] = dict(split=None, laterality=lat, view='MLO', boxes=[
            dict(category=c, birads=None, birads_raw=None, pathology='benign' if sev == 'B' else 'malignant',
                 xyxy=tuple(float(v) for v in box), planted=None) for c, _, box, sev, _ in findings])
    lines.append('*NOTE 3* (a note line, not a row)')
    write_text(os.path.join(root, 'Info.txt'), '\n'.join(lines) + '\n')
    return truth


# --- INbreast --------------------------------------------------------------------------------------------------

INBREAST_NAMES = {'Mass': ['Mass'], 'Suspicious Calcification': ['Calcification', 'Calcifications', 'Cluster'],
                  'Architectural Distortion': ['Distortion', 'Espiculated Region', 'Spiculated region'],
                  'Asymmetry': ['Asymmetry', 'Assymetry']}


def write_inbreast(root: str, patients: int = 8, seed: int = 0, scale: float = 0.08) -> dict:
    """INbreast: ``AllDICOMs/`` (names with ``ML`` views), ``AllXML/`` OsiriX plists, ``INbreast.csv`` (``;``).

    Planted: misspelt ROI names; single-point calcifications (one point, area 0); NumberOfPoints and NumberOfROIs
    that disagree with the lists (warnings); a polygon partly outside the image (clipped) and a ROI wholly
    outside (left out); a ROI named outside the vocabulary (left out); normal images without XML; Bi-Rads
    4a/4b/4c.
    """
    import plistlib

    rng = np.random.default_rng(seed)
    cols, rows_px = int(3328 * scale), int(4084 * scale)
    spacing = 0.07 / scale
    truth: dict = dict(images={}, expected_skips=[], pitfalls={}, single_point_mm=1.0)
    csv_rows = [['Patient ID', 'Patient age', 'Laterality', 'View', 'Acquisition date', 'File Name', 'ACR',
                 'Bi-Rads']]
    number = 20586000
    for p in range(patients):
        pid = f'{int(rng.integers(1 << 60)):016x}'
        for lat in 'LR':
            birads_text = str(rng.choice(['1', '2', '3', '4a', '4b', '4c', '5', '6'])) if p % 3 else '1'
            for view in ('CC', 'MLO'):
                number += 1
                name = str(number)
                plan = []
                if birads_text not in ('1', '2'):
                    for cat in rng.choice(list(INBREAST_NAMES), size=int(rng.integers(1, 3)), replace=False):
                        plan.append(str(cat))
                image_truth = truth['images'][name] = dict(split=None, laterality=lat, view=view, boxes=[])
                img = SynthImage(name, name, name, lat, view, 'siemens', rows_px, cols, 4, 'C', 'training',
                                 int(rng.integers(1 << 30)))
                rois, draw = [], []
                n_birads = int(birads_text[0])
                box_birads = n_birads if n_birads in (3, 4, 5) else None
                for k, cat in enumerate(plan):
                    box = _place(img, cat, rng.uniform(0.2, 0.8, 2), rng.uniform(0.8, 1.2), rows_px / 3518, rng)
                    x0, y0, x1, y1 = box
                    roi_name = INBREAST_NAMES[cat][int(rng.integers(len(INBREAST_NAMES[cat])))]
                    if cat == 'Suspicious Calcification' and k == 0 and number % 2:  # a single-point calcification
                        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                        pts = [(cx, cy)]
                        half = 1.0 / spacing / 2
                        tb = (cx - half, cy - half, cx + half, cy + half)
                        truth['pitfalls'].setdefault('single_point', []).append(name)
                        draw.append((cat, box))
                    else:
                        n = 12
                        a = np.linspace(0, 2 * np.pi, n, endpoint=False)
                        pts = [((x0 + x1) / 2 + np.cos(t) * (x1 - x0) / 2, (y0 + y1) / 2 + np.sin(t) * (y1 - y0) / 2)
                               for t in a]
                        xs, ys = [q[0] for q in pts], [q[1] for q in pts]
                        tb = (min(xs), min(ys), max(xs), max(ys))
                        draw.append((cat, box))
                    tb = (max(tb[0], 0.0), max(tb[1], 0.0), min(tb[2], float(cols)), min(tb[3], float(rows_px)))
                    image_truth['boxes'].append(dict(category=cat, birads=box_birads, birads_raw=birads_text,
                                                     pathology=None, xyxy=tb, planted=None))
                    rois.append(_inbreast_roi(roi_name, pts, k))
                if number % 7 == 0:  # a ROI wholly outside the image, and one named outside the vocabulary
                    rois.append(_inbreast_roi('Mass', [(cols + 10, 5), (cols + 30, 5), (cols + 30, 20)], len(rois)))
                    rois.append(_inbreast_roi('Nipple', [(10, 10), (20, 10), (20, 20)], len(rois)))
                    truth['expected_skips'] += [dict(key=name, reason='outside'), dict(key=name, reason='name')]
                if rois and number % 5 == 0:
                    rois[0]['NumberOfPoints'] += 1  # disagrees with the list
                    truth['pitfalls'].setdefault('points_mismatch', []).append(name)
                pixels = _render_boxes(name, lat, view, rows_px, cols, int(rng.integers(1 << 30)),
                                       [(c, box_birads, b) for c, b in draw])
                fname = f"{name}_{pid}_MG_{lat}_{'ML' if view == 'MLO' else 'CC'}_ANON.dcm"
                _save_dicom(os.path.join(root, 'AllDICOMs', fname), np.rint(pixels * 16383).astype(np.uint16),
                            (name,), PixelSpacing=[spacing, spacing], ImageLaterality=lat, Manufacturer='SIEMENS',
                            ManufacturerModelName='MammoNovation', BitsStored=14, HighBit=13)
                if rois:
                    doc = {'Images': [{'ImageIndex': 0, 'NumberOfROIs': len(rois) + (1 if number % 11 == 0 else 0),
                                       'ROIs': rois}]}
                    os.makedirs(os.path.join(root, 'AllXML'), exist_ok=True)
                    with atomic_path(os.path.join(root, 'AllXML', f'{name}.xml')) as tmp, open(tmp, 'wb') as fh:
                        plistlib.dump(doc, fh)
                csv_rows.append([pid[:8], str(int(rng.integers(40, 80))), lat, view, '201001',
                                 name, str(int(rng.integers(1, 5))), birads_text])
    write_text(os.path.join(root, 'INbreast.csv'), '\n'.join(';'.join(r) for r in csv_rows) + '\n')
    return truth


def _inbreast_roi(name: str, pts: list, index: int) -> dict:
    """One ROI of an OsiriX plist, keys in the release's order."""
    single = len(pts) <= 2
    return {'Area': 0.0 if single else 100.0, 'Center': f'({pts[0][0]:.2f}, {pts[0][1]:.2f}, 0.00)', 'Dev': 0.0,
            'IndexInImage': index, 'Max': 0.0, 'Mean': 0.0, 'Min': 0.0, 'Name': name, 'NumberOfPoints': len(pts),
            'Point_mm': [f'({x * 0.07:.4f}, {y * 0.07:.4f}, 0.0)' for x, y in pts],
            'Point_px': [f'({x:.6f}, {y:.6f})' for x, y in pts], 'Total': 0.0, 'Type': 19 if single else 15}


# --- EMBED -----------------------------------------------------------------------------------------------------

EMBED_CLINICAL = ['empi_anon', 'acc_anon', 'study_date_anon', 'desc', 'tissueden', 'asses', 'numfind', 'side',
                  'total_L_find', 'total_R_find', 'massshape', 'massmargin', 'massdens', 'calcfind', 'calcdistri',
                  'calcnumber', 'bside', 'path1', 'path_severity', 'age_at_study', 'ETHNIC_GROUP_DESC', 'RACE_DESC']
EMBED_METADATA = ['anon_dicom_path', 'empi_anon', 'acc_anon', 'study_date_anon', 'StudyDescription',
                  'SeriesDescription', 'FinalImageType', 'ImageLateralityFinal', 'ViewPosition', 'spot_mag', 'num_roi',
                  'ROI_coords', 'SRC_DST', 'match_level', 'Manufacturer', 'WindowCenter', 'WindowWidth']


def write_embed(root: str, patients: int = 8, seed: int = 0, scale: float = 0.06) -> dict:
    """EMBED: ``tables/`` (clinical: one row per finding; metadata: one row per file) and DICOMs under
    ``images/cohort_1/<empi>/<study>/<series>/<sop>.dcm``.

    Planted: ROI_coords y first, ``()`` for none, two ROIs in one tuple; findings on side B or without a side;
    C-view and spot-magnification images (left out); a suspicious finding without an ROI (its image left out);
    ``anon_dicom_path`` with the authors' absolute prefix on some rows and ``./`` on others.
    """
    rng = np.random.default_rng(seed)
    cols, rows_px = int(3328 * scale), int(4096 * scale)
    truth: dict = dict(images={}, expected_skips=[], pitfalls={})
    clinical, meta = [EMBED_CLINICAL], [EMBED_METADATA]
    for p in range(patients):
        empi, acc = str(10000000 + p * 37), str(60000000 + p * 53)
        kind = ['negative', 'mass', 'calc', 'bilateral', 'unlocated', 'mass'][p % 6]
        dens = str(int(rng.integers(1, 5)))
        side = {'mass': 'L', 'calc': 'R', 'bilateral': 'B', 'unlocated': 'L'}.get(kind, '')
        if kind == 'negative':
            clinical.append([empi, acc, '2019-01-01', 'screening', dens, 'N', '0', '', '0', '0', '', '', '', '', '',
                             '', '', '', '', '55', '', ''])
        else:
            shape, calc = ('X', '') if kind in ('mass', 'unlocated') else ('', 'A') if kind == 'calc' else ('A', '')
            sev = {'mass': '0', 'calc': '4', 'bilateral': '', 'unlocated': '1'}[kind]
            asses = {'mass': 'S', 'calc': 'P', 'bilateral': 'M', 'unlocated': 'S'}[kind]
            clinical.append([empi, acc, '2019-01-01', 'diagnostic', dens, asses, '1',
                             side if p != 5 else '', '1', '0', shape, 'D' if shape else '', '', calc, '', '', side, '',
                             sev, '60', '', ''])
            if p == 5:
                truth['pitfalls']['finding_without_side'] = acc
        study_uid = _uid('embed-study', p)
        for lat in 'LR':
            for view in ('CC', 'MLO'):
                series_uid, sop = _uid('embed-series', p, lat, view), _uid('embed-sop', p, lat, view)
                findings = []
                matches = kind != 'negative' and (side in (lat, 'B') or p == 5)
                if matches and kind != 'unlocated':
                    cat = {'mass': 'Mass', 'calc': 'Suspicious Calcification', 'bilateral': 'Architectural Distortion'}[
                        kind]
                    img = SynthImage(sop, sop, sop, lat, view, 'siemens', rows_px, cols, 4, 'C', 'training', 0)
                    n_roi = 2 if (p == 1 and view == 'CC') else 1
                    for _ in range(n_roi):
                        box = _place(img, cat, rng.uniform(0.2, 0.8, 2), rng.uniform(0.9, 1.2), rows_px / 3518, rng)
                        box = tuple(float(int(round(v))) for v in box)
                        findings.append((cat, box))
                    birads = {'mass': 4, 'calc': 3, 'bilateral': 5}[kind]
                    pathology = {'mass': 'malignant', 'calc': 'benign', 'bilateral': None}[kind]
                    raw = {'mass': 'S', 'calc': 'P', 'bilateral': 'M'}[kind]
                key = sop
                pixels = _render_boxes(sop, lat, view, rows_px, cols, int(rng.integers(1 << 30)),
                                       [(c, 4, b) for c, b in findings])
                rel = os.path.join('images', 'cohort_1', empi, study_uid, series_uid, f'{sop}.dcm')
                _save_dicom(os.path.join(root, rel), np.rint(100 + pixels * 3900).astype(np.uint16), (sop,),
                            Manufacturer='HOLOGIC, Inc.', ManufacturerModelName='Lorad Selenia',
                            WindowCenter=2050, WindowWidth=4100, ImageLaterality=lat, ViewPosition=view)
                roi = '(' + ','.join(f'({int(b[1])}, {int(b[0])}, {int(b[3])}, {int(b[2])})'
                                     for _, b in findings) + (',)' if len(findings) == 1 else ')')
                path = ('/mnt/NAS2/mammo/anon_dicom/' + rel[len('images/'):]) if p % 2 else './' + rel
                meta.append([path, empi, acc, '2019-01-01', 'MG Diagnostic', f'{lat} {view}', '2D', lat, view, '0',
                             str(len(findings)), roi, '', '1', 'HOLOGIC, Inc.', '2050', '4100'])
                if kind == 'unlocated' and lat == 'L':
                    truth['expected_skips'].append(dict(key=key, reason='unlocated'))
                else:
                    truth['images'][key] = dict(split=None, laterality=lat, view=view, boxes=[
                        dict(category=c, birads=birads, birads_raw=raw, pathology=pathology, xyxy=b, planted=None)
                        for c, b in findings])
            # a C-view and a spot-magnification image of the same exam: in the table, not converted
            for extra, (ftype, spot) in enumerate((('cview', '0'), ('2D', '1'))):
                sop = _uid('embed-extra', p, lat, extra)
                rel = os.path.join('images', 'cohort_1', empi, study_uid, _uid('embed-xs', p, lat, extra), f'{sop}.dcm')
                _save_dicom(os.path.join(root, rel), np.full((8, 8), 100, np.uint16), (sop,))
                meta.append(['./' + rel, empi, acc, '2019-01-01', 'MG Diagnostic', 'x', ftype, lat, 'CC', spot, '0',
                             '()', '', '1', 'HOLOGIC, Inc.', '2050', '4100'])
                truth['expected_skips'].append(dict(key=sop, reason=ftype if spot == '0' else 'spot'))
    write_text(os.path.join(root, 'tables', 'EMBED_OpenData_clinical.csv'), _csv_text(clinical))
    write_text(os.path.join(root, 'tables', 'EMBED_OpenData_metadata.csv'), _csv_text(meta))
    return truth


def write_release(root: str, fmt: str, seed: int = 0, scale: Optional[float] = None, size: int = 12) -> dict:
    """Writes the synthetic release of ``fmt``; returns its truth."""
    if fmt == 'cbis-ddsm':
        return write_cbis_ddsm(root, patients=size, seed=seed, scale=scale or 0.1)
    if fmt == 'mias':
        return write_mias(root, films=size, seed=seed)
    if fmt == 'inbreast':
        return write_inbreast(root, patients=size, seed=seed, scale=scale or 0.08)
    if fmt == 'embed':
        return write_embed(root, patients=size, seed=seed, scale=scale or 0.06)
    raise ValueError(f'unknown format {fmt!r}; one of {", ".join(FORMATS)}')

