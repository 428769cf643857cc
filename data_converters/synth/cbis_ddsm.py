"""A synthetic CBIS-DDSM download (``mammo-det synth --format cbis-ddsm``): its four case-description CSVs and
DICOMs in either TCIA layout, with the release's traps planted (``TRAPS``)."""
from __future__ import annotations

import os

import cv2
import numpy as np

from mammo_det.fileio import write_text

from .common import Trap, csv_text, lesion_image, new_truth, plant, save_dicom, uid

CBIS_MASS = ['patient_id', 'breast_density', 'left or right breast', 'image view', 'abnormality id',
             'abnormality type', 'mass shape', 'mass margins', 'assessment', 'pathology', 'subtlety',
             'image file path', 'cropped image file path', 'ROI mask file path']
CBIS_CALC = ['patient_id', 'breast density', 'left or right breast', 'image view', 'abnormality id',
             'abnormality type', 'calc type', 'calc distribution', 'assessment', 'pathology', 'subtlety',
             'image file path', 'cropped image file path', 'ROI mask file path']
TRAPS = dict(
    mask_size=Trap('the ROI mask is 95 % x 90 % of its image', 'abnormality', at=(3,),
                   expect='the abnormality left out, reported in skipped_boxes'),
    missing_mask=Trap('the ROI series has the crop and no mask', 'abnormality', at=(5,),
                      expect='the abnormality left out, reported in skipped_boxes'),
    swapped_columns=Trap('cropped image and ROI mask file path columns swapped', 'abnormality', every=3),
    mask_as_1_1=Trap('the ROI series holds the mask as 1-1 and the crop as 1-2 (the other way round otherwise)',
                     'abnormality', every=2),
    two_abnormalities=Trap('two abnormalities on one image', 'patient', at=(1,)),
    mass_and_calc_same_view=Trap('the same view in the mass and the calcification CSVs', 'patient', at=(2,),
                                 expect='one image with the boxes of both'),
)
# The layout's own regularities (not traps): the official test split, views and sides.
TEST_EVERY, ONE_VIEW_EVERY = 4, 3  # patient p is in test when p % 4 == 0; has only a CC view when p % 3 == 0
PATHOLOGIES = ['MALIGNANT', 'BENIGN', 'BENIGN_WITHOUT_CALLBACK']  # by abnormality number modulo 3


class _Release:
    """The writer's state while it walks patients, views and abnormalities (one random stream for all)."""

    def __init__(self, root: str, seed: int, scale: float, layout: str):
        self.rng = np.random.default_rng(seed)
        self.layout = layout
        self.base = os.path.join(root, 'manifest-1600000000000', 'CBIS-DDSM') if layout == 'descriptive' else \
            os.path.join(root, 'CBIS-DDSM')
        self.truth = new_truth(TRAPS)
        self.rows = {(k, s): [] for k in ('mass', 'calcification') for s in ('train', 'test')}
        self.shape = (int(4600 * scale), int(3000 * scale))
        self.abnormality = 0

    def patient(self, p: int) -> None:
        pid = f'P_{p:05d}'
        split = 'test' if p % TEST_EVERY == 0 else 'train'
        side = 'LEFT' if p % 2 else 'RIGHT'
        for view in (['CC'] if p % ONE_VIEW_EVERY == 0 else ['CC', 'MLO']):
            kinds = ['mass'] if (p + len(view)) % 2 else ['calcification']
            if TRAPS['mass_and_calc_same_view'].on(p) and view == 'CC':
                kinds = ['mass', 'calcification']
                plant(self.truth, 'mass_and_calc_same_view', f'{pid}_{side}_{view}')
            per_kind = 2 if TRAPS['two_abnormalities'].on(p) else 1
            if per_kind > 1:
                plant(self.truth, 'two_abnormalities', f'{pid}_{side}_{view}')
            self.view(pid, split, side, view, [k for k in kinds for _ in range(per_kind)])

    def view(self, pid: str, split: str, side: str, view: str, kinds: list) -> None:
        lesions = []
        for kind in kinds:
            cat = 'Mass' if kind == 'mass' else 'Suspicious Calcification'
            lesions.append((cat, int(self.rng.choice([2, 3, 4, 5])), self.rng.uniform(0.15, 0.85, 2),
                            self.rng.uniform(0.8, 1.2), kind))
        key = f'{pid}_{side}_{view}'
        rows_px, cols_px = self.shape
        pixels, boxes = lesion_image(key, side[0], view, rows_px, cols_px, int(self.rng.integers(1 << 30)),
                                     [(c, b if b >= 3 else None, pos, sz) for c, b, pos, sz, _ in lesions])
        stored = (2000 + pixels * 60000).astype(np.uint16)
        self.truth['images'][key] = dict(split=split, laterality=side[0], view=view, boxes=[],
                                         shape=(rows_px, cols_px))
        written, count = set(), {}
        for (cat, assessment, _, _, kind), box in zip(lesions, boxes):
            split_word = 'Training' if split == 'train' else 'Test'
            subject = f"{'Mass' if kind == 'mass' else 'Calc'}-{split_word}_{pid}_{side}_{view}"
            study, series = uid('study', subject), uid('series', subject)
            if subject not in written:
                written.add(subject)
                _write_file(self.base, self.layout, subject, study, series, 'full mammogram images', '1-1', stored,
                            PatientID=subject, Laterality=side[0], PatientOrientation=view,
                            SeriesDescription='full mammogram images')
            count[subject] = count.get(subject, 0) + 1
            self.abnormality += 1
            row = self.roi(key, subject, count[subject], cat, assessment, kind, box, stored, (study, series))
            self.rows[(kind, split)].append([pid, *row[:1], side, view, count[subject], kind, *row[1:]])

    def roi(self, key: str, subject: str, abn: int, cat: str, assessment: int, kind: str, box: tuple,
            stored: np.ndarray, image_uids: tuple) -> list:
        """Writes one abnormality's ROI series; returns its CSV cells after the side, view, id and type."""
        n = self.abnormality
        roi_subject = f'{subject}_{abn}'
        r_study, r_series = uid('study', roi_subject), uid('series', roi_subject)
        mask, true_box = _mask(stored.shape, box)
        x0, y0, x1, y1 = box
        crop = stored[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))]
        planted = next((t for t in ('mask_size', 'missing_mask') if TRAPS[t].on(n)), None)
        if planted == 'mask_size':
            mask = cv2.resize(mask, (int(mask.shape[1] * 0.95), int(mask.shape[0] * 0.9)),
                              interpolation=cv2.INTER_NEAREST)
        mask_first = TRAPS['mask_as_1_1'].on(n)
        if planted != 'missing_mask':
            _write_file(self.base, self.layout, roi_subject, r_study, r_series, 'ROI mask images',
                        '1-1' if mask_first else '1-2', mask, PatientID=roi_subject)
        _write_file(self.base, self.layout, roi_subject, r_study, r_series, 'ROI mask images',
                    '1-2' if mask_first else '1-1', crop, PatientID=roi_subject)
        birads = assessment if assessment >= 3 else None
        pathology = PATHOLOGIES[n % 3]
        self.truth['images'][key]['boxes'].append(dict(
            category=cat, birads=birads, birads_raw=str(assessment),
            pathology='malignant' if pathology == 'MALIGNANT' else 'benign', xyxy=true_box, planted=planted))
        if planted:
            plant(self.truth, planted, roi_subject)
            self.truth['expected_skips'].append(dict(key=key, reason=planted, roi=roi_subject))
        study, series = image_uids
        img_path = f'{subject}/{study}/{series}/000000.dcm\n'  # a newline inside the cell, as released
        crop_path = f'{roi_subject}/{r_study}/{r_series}/000000.dcm'
        mask_path = f'{roi_subject}/{r_study}/{r_series}/000001.dcm\n'
        if TRAPS['swapped_columns'].on(n):
            crop_path, mask_path = mask_path, crop_path
            plant(self.truth, 'swapped_columns', roi_subject)
        density = str(int(self.rng.integers(1, 5)))
        descriptive = ['IRREGULAR', 'SPICULATED'] if kind == 'mass' else ['PLEOMORPHIC', 'N/A']
        return [density, *descriptive, str(assessment), f' {pathology} ', str(int(self.rng.integers(1, 6))),
                img_path, crop_path, mask_path]

    def write_csvs(self, root: str) -> None:
        for (kind, split), body in self.rows.items():
            header = CBIS_MASS if kind == 'mass' else CBIS_CALC
            name = f"{'mass' if kind == 'mass' else 'calc'}_case_description_{split}_set.csv"
            write_text(os.path.join(root, name), csv_text([header] + body))


def _mask(shape: tuple, box: tuple) -> tuple:
    """(an elliptic 0/255 mask inside ``box``, the extent of its foreground as xyxy)."""
    x0, y0, x1, y1 = box
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, (int(round((x0 + x1) / 2)), int(round((y0 + y1) / 2))),
                (max(int(round((x1 - x0) / 2)), 1), max(int(round((y1 - y0) / 2)), 1)), 0, 0, 360, 255, -1)
    ys, xs = np.nonzero(mask)
    return mask, (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def _write_file(base: str, layout: str, subject: str, study: str, series: str, description: str, name: str,
                pixels: np.ndarray, **tags) -> None:
    if layout == 'classic':
        folder = os.path.join(base, subject, study, series)
        fname = {'1-1': '000000.dcm', '1-2': '000001.dcm'}[name]
    else:
        folder = os.path.join(base, subject, f'07-20-2016-DDSM-NA-{study[-5:]}',
                              f'1.000000-{description}-{series[-5:]}')
        fname = f'{name}.dcm'
    save_dicom(os.path.join(folder, fname), pixels, (subject, name), **tags)


def write_cbis_ddsm(root: str, patients: int = 12, seed: int = 0, scale: float = 0.1,
                    layout: str = 'descriptive') -> dict:
    """A CBIS-DDSM download (``layout``: 'descriptive', today's NBIA, or 'classic') and its four CSVs, with
    ``TRAPS`` planted; also newlines and spaces in cells, both density column spellings and ``N/A`` cells."""
    if layout not in ('descriptive', 'classic'):
        raise ValueError(f"layout must be 'descriptive' or 'classic', got {layout!r}")
    release = _Release(root, seed, scale, layout)
    for p in range(1, patients + 1):
        release.patient(p)
    release.write_csvs(root)
    return release.truth
