"""A synthetic EMBED release (``mammo-det synth --format embed``): ``tables/`` (clinical: one row per finding;
metadata: one row per file) and DICOMs under ``images/cohort_1/<empi>/<study>/<series>/<sop>.dcm``, with the
release's traps planted (``TRAPS``), then one breast per ``massshape`` and ``calcfind`` code of the clinical legend
(``CODE_CASES``: generic and punctate calcifications twice, assessed suspicious and benign), each labelled by that
code alone, so that every row of the adapter's label table is converted once."""
from __future__ import annotations

import os

import numpy as np

from mammo_det.fileio import write_text

from ..embed import ASSES as ASSES_LEVEL
from ..embed import BY_ASSESSMENT, LABELS
from .common import Trap, breast, csv_text, new_truth, plant, render_boxes, save_dicom, uid
from .vindr import place_lesion

EMBED_CLINICAL = ['empi_anon', 'acc_anon', 'study_date_anon', 'desc', 'tissueden', 'asses', 'numfind', 'side',
                  'total_L_find', 'total_R_find', 'massshape', 'massmargin', 'massdens', 'calcfind', 'calcdistri',
                  'calcnumber', 'bside', 'path1', 'path_severity', 'age_at_study', 'ETHNIC_GROUP_DESC', 'RACE_DESC']
EMBED_METADATA = ['anon_dicom_path', 'empi_anon', 'acc_anon', 'study_date_anon', 'StudyDescription',
                  'SeriesDescription', 'FinalImageType', 'ImageLateralityFinal', 'ViewPosition', 'spot_mag', 'num_roi',
                  'ROI_coords', 'SRC_DST', 'match_level', 'Manufacturer', 'WindowCenter', 'WindowWidth']
TRAPS = dict(
    y_first=Trap('ROI_coords as (ymin, xmin, ymax, xmax) tuple text, () for none', 'image'),
    two_rois=Trap('two ROIs in one tuple (the CC view of patient 2)', 'patient', at=(2,)),
    side_b=Trap('a finding on side B (both breasts)', 'patient', every=6, offset=4, expect='its ROIs on both breasts'),
    finding_without_side=Trap('a finding without a side', 'patient', at=(6,), expect='it labels both breasts'),
    unlocated=Trap('a suspicious finding whose image has no ROI', 'patient', every=6, offset=5,
                   expect='the image left out, reported in skipped_images'),
    not_2d=Trap('a C-view and a spot-magnification image per breast', 'patient', every=1,
                expect='left out, reported in skipped_images'),
    absolute_paths=Trap("anon_dicom_path with the authors' absolute prefix (./ on the other patients)", 'patient',
                        every=2, expect='resolved under the release folder'),
    codes=Trap("every massshape and calcfind code of the clinical legend, one breast each (CODE_CASES)", 'image',
               expect="the category of the adapter's LABELS, or the ROI left out and counted in left_out_labels"),
)
# The exam of patient p (1-based) by (p - 1) % 6: what the clinical table says of it.
KINDS = ['negative', 'mass', 'calc', 'bilateral', 'unlocated', 'mass']
SIDE = {'mass': 'L', 'calc': 'R', 'bilateral': 'B', 'unlocated': 'L'}
SHAPE_CALC = {'mass': ('X', ''), 'unlocated': ('X', ''), 'calc': ('', 'A'), 'bilateral': ('A', '')}
SEVERITY = {'mass': '0', 'calc': '4', 'bilateral': '', 'unlocated': '1'}
ASSES = {'mass': 'S', 'calc': 'P', 'bilateral': 'M', 'unlocated': 'S'}
CATEGORY = {'mass': 'Mass', 'calc': 'Suspicious Calcification', 'bilateral': 'Architectural Distortion'}
BIRADS = {'mass': 4, 'calc': 3, 'bilateral': 5}
PATHOLOGY = {'mass': 'malignant', 'calc': 'benign', 'bilateral': None}
# (field, code, the finding's asses): one breast side each, after the trap patients
CODE_CASES = [(f, c, 'B' if cat is None else 'S') for (f, c), (_, cat) in LABELS.items()] + \
    [(f, c, 'B') for (f, c), (_, cat) in LABELS.items() if cat == BY_ASSESSMENT]


def expected_category(field: str, code: str, asses: str):
    """The category the converter must give a breast labelled by this code alone (None: left out)."""
    cat = LABELS[(field, code)][1]
    if cat == BY_ASSESSMENT:
        return 'Suspicious Calcification' if ASSES_LEVEL.get(asses, 0) >= 3 else None
    return cat


class _Release:
    def __init__(self, root: str, seed: int, scale: float):
        self.root = root
        self.rng = np.random.default_rng(seed)
        self.cols, self.rows = int(3328 * scale), int(4096 * scale)
        self.truth = new_truth(TRAPS)
        self.clinical, self.meta = [EMBED_CLINICAL], [EMBED_METADATA]

    def patient(self, n: int) -> None:
        """Patient n (1-based): one exam, its clinical row and four 2D views, plus the images not to convert."""
        empi, acc = str(10000000 + (n - 1) * 37), str(60000000 + (n - 1) * 53)
        kind = KINDS[(n - 1) % len(KINDS)]
        dens = str(int(self.rng.integers(1, 5)))
        side = SIDE.get(kind, '')
        if kind == 'negative':
            self.clinical.append([empi, acc, '2019-01-01', 'screening', dens, 'N', '0', '', '0', '0', '', '', '', '',
                                  '', '', '', '', '', '55', '', ''])
        else:
            shape, calc = SHAPE_CALC[kind]
            no_side = TRAPS['finding_without_side'].on(n)
            self.clinical.append([empi, acc, '2019-01-01', 'diagnostic', dens, ASSES[kind], '1',
                                  '' if no_side else side, '1', '0', shape, 'D' if shape else '', '', calc, '', '',
                                  side, '', SEVERITY[kind], '60', '', ''])
            for trap in ('finding_without_side', 'side_b', 'unlocated'):
                if TRAPS[trap].on(n):
                    plant(self.truth, trap, acc)
        study_uid = uid('embed-study', n - 1)
        for lat in 'LR':
            for view in ('CC', 'MLO'):
                labelled = kind != 'negative' and (side in (lat, 'B') or TRAPS['finding_without_side'].on(n))
                self.image(n, empi, acc, study_uid, lat, view, kind if labelled else None)
            self.not_2d(n, empi, acc, study_uid, lat)

    def image(self, n: int, empi: str, acc: str, study_uid: str, lat: str, view: str, kind) -> None:
        """One 2D view; ``kind``: the exam's finding on this side (None: none)."""
        p = n - 1
        series_uid, sop = uid('embed-series', p, lat, view), uid('embed-sop', p, lat, view)
        findings = []
        if kind is not None and kind != 'unlocated':
            geometry = breast(sop, lat, view, self.rows, self.cols, 0)
            n_roi = 2 if (TRAPS['two_rois'].on(n) and view == 'CC') else 1
            for _ in range(n_roi):
                box = place_lesion(geometry, CATEGORY[kind], self.rng.uniform(0.2, 0.8, 2), self.rng.uniform(0.9, 1.2),
                                   self.rows / 3518, self.rng)
                findings.append((CATEGORY[kind], tuple(float(int(round(v))) for v in box)))
            if n_roi > 1:
                plant(self.truth, 'two_rois', sop)
        pixels = render_boxes(sop, lat, view, self.rows, self.cols, int(self.rng.integers(1 << 30)),
                              [(c, 4, b) for c, b in findings])
        rel = os.path.join('images', 'cohort_1', empi, study_uid, series_uid, f'{sop}.dcm')
        save_dicom(os.path.join(self.root, rel), np.rint(100 + pixels * 3900).astype(np.uint16), (sop,),
                   Manufacturer='HOLOGIC, Inc.', ManufacturerModelName='Lorad Selenia', WindowCenter=2050,
                   WindowWidth=4100, ImageLaterality=lat, ViewPosition=view)
        roi = '(' + ','.join(f'({int(b[1])}, {int(b[0])}, {int(b[3])}, {int(b[2])})'
                             for _, b in findings) + (',)' if len(findings) == 1 else ')')
        absolute = TRAPS['absolute_paths'].on(n)
        path = ('/mnt/NAS2/mammo/anon_dicom/' + rel[len('images/'):]) if absolute else './' + rel
        self.meta.append([path, empi, acc, '2019-01-01', 'MG Diagnostic', f'{lat} {view}', '2D', lat, view, '0',
                          str(len(findings)), roi, '', '1', 'HOLOGIC, Inc.', '2050', '4100'])
        if absolute:
            plant(self.truth, 'absolute_paths', sop)
        if kind == 'unlocated':
            self.truth['expected_skips'].append(dict(key=sop, reason='unlocated'))
            return
        self.truth['images'][sop] = dict(split=None, laterality=lat, view=view, boxes=[
            dict(category=c, birads=BIRADS[kind], birads_raw=ASSES[kind], pathology=PATHOLOGY[kind], xyxy=b,
                 planted=None) for c, b in findings])

    def code_patient(self, n: int, cases: list) -> None:
        """Patient n with one clinical row per case (one side each: L, then R) and four 2D views."""
        empi, acc = str(10000000 + (n - 1) * 37), str(60000000 + (n - 1) * 53)
        study_uid = uid('embed-study', n - 1)
        for lat, (field, code, asses) in zip('LR', cases):
            row = dict.fromkeys(EMBED_CLINICAL, '')
            row.update(empi_anon=empi, acc_anon=acc, study_date_anon='2019-01-01', desc='diagnostic', tissueden='3',
                       asses=asses, numfind='1', side=lat, age_at_study='60', **{field: code})
            self.clinical.append([row[k] for k in EMBED_CLINICAL])
        for lat, (field, code, asses) in zip('LR', cases):
            category = expected_category(field, code, asses)
            drawn = category or ('Mass' if field == 'massshape' else 'Suspicious Calcification')
            for view in ('CC', 'MLO'):
                sop = self.coded_image(n, empi, acc, study_uid, lat, view, drawn)
                boxes = self.truth['images'][sop]['boxes']
                boxes[0].update(category=category or drawn, planted=None if category else 'left_out',
                                birads=ASSES_LEVEL.get(asses) if ASSES_LEVEL.get(asses, 0) >= 3 else None,
                                birads_raw=asses, code=f'{field} {code}')
                plant(self.truth, 'codes', sop)

    def coded_image(self, n: int, empi: str, acc: str, study_uid: str, lat: str, view: str, drawn: str) -> str:
        """One 2D view with one ROI drawn as ``drawn``; returns its SOP instance UID."""
        series_uid, sop = uid('embed-series', n - 1, lat, view), uid('embed-sop', n - 1, lat, view)
        geometry = breast(sop, lat, view, self.rows, self.cols, 0)
        box = place_lesion(geometry, drawn, self.rng.uniform(0.3, 0.7, 2), 1.0, self.rows / 3518, self.rng)
        box = tuple(float(int(round(min(max(v, 0), lim)))) for v, lim in zip(box, (self.cols, self.rows) * 2))
        pixels = render_boxes(sop, lat, view, self.rows, self.cols, int(self.rng.integers(1 << 30)), [(drawn, 4, box)])
        rel = os.path.join('images', 'cohort_1', empi, study_uid, series_uid, f'{sop}.dcm')
        save_dicom(os.path.join(self.root, rel), np.rint(100 + pixels * 3900).astype(np.uint16), (sop,),
                   Manufacturer='HOLOGIC, Inc.', ManufacturerModelName='Lorad Selenia', WindowCenter=2050,
                   WindowWidth=4100, ImageLaterality=lat, ViewPosition=view)
        roi = f'(({int(box[1])}, {int(box[0])}, {int(box[3])}, {int(box[2])}),)'
        self.meta.append(['./' + rel, empi, acc, '2019-01-01', 'MG Diagnostic', f'{lat} {view}', '2D', lat, view,
                          '0', '1', roi, '', '1', 'HOLOGIC, Inc.', '2050', '4100'])
        self.truth['images'][sop] = dict(split=None, laterality=lat, view=view, boxes=[
            dict(category=drawn, birads=None, birads_raw=None, pathology=None, xyxy=box, planted=None)])
        return sop

    def not_2d(self, n: int, empi: str, acc: str, study_uid: str, lat: str) -> None:
        """A C-view and a spot-magnification image of the exam: in the table, not converted."""
        for extra, (ftype, spot) in enumerate((('cview', '0'), ('2D', '1'))):
            sop = uid('embed-extra', n - 1, lat, extra)
            rel = os.path.join('images', 'cohort_1', empi, study_uid, uid('embed-xs', n - 1, lat, extra), f'{sop}.dcm')
            save_dicom(os.path.join(self.root, rel), np.full((8, 8), 100, np.uint16), (sop,))
            self.meta.append(['./' + rel, empi, acc, '2019-01-01', 'MG Diagnostic', 'x', ftype, lat, 'CC', spot, '0',
                              '()', '', '1', 'HOLOGIC, Inc.', '2050', '4100'])
            self.truth['expected_skips'].append(dict(key=sop, reason=ftype if spot == '0' else 'spot'))
            plant(self.truth, 'not_2d', sop)


def write_embed(root: str, patients: int = 8, seed: int = 0, scale: float = 0.06) -> dict:
    """EMBED with ``TRAPS`` planted in ``patients`` patients, then ``CODE_CASES`` in as many more as they need."""
    release = _Release(root, seed, scale)
    for n in range(1, patients + 1):
        release.patient(n)
    for k in range(0, len(CODE_CASES), 2):
        release.code_patient(patients + 1 + k // 2, CODE_CASES[k:k + 2])
    write_text(os.path.join(root, 'tables', 'EMBED_OpenData_clinical.csv'), csv_text(release.clinical))
    write_text(os.path.join(root, 'tables', 'EMBED_OpenData_metadata.csv'), csv_text(release.meta))
    return release.truth
