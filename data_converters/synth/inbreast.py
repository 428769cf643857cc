"""A synthetic INbreast release (``mammo-det synth --format inbreast``): ``AllDICOMs/`` (file names with ``ML``
views), ``AllXML/`` OsiriX plists and ``INbreast.csv`` (``;``), with the release's traps planted (``TRAPS``)."""
from __future__ import annotations

import os
import plistlib

import numpy as np

from mammo_det.fileio import atomic_path, write_text

from .common import Trap, breast, new_truth, plant, render_boxes, save_dicom
from .vindr import place_lesion

INBREAST_NAMES = {'Mass': ['Mass'], 'Suspicious Calcification': ['Calcification', 'Calcifications', 'Cluster'],
                  'Architectural Distortion': ['Distortion', 'Espiculated Region', 'Spiculated region'],
                  'Asymmetry': ['Asymmetry', 'Assymetry']}
TRAPS = dict(
    misspelt_names=Trap('ROI names as misspelt in the release (Assymetry, Espiculated Region, ...)', 'ROI',
                        expect='mapped to their category'),
    single_point=Trap('a calcification marked by one point (area 0), on odd image numbers', 'image number', every=2,
                      offset=1, expect='a 1 mm square through Pixel Spacing'),
    outside_and_unknown=Trap('a ROI wholly outside the image, and one named outside the vocabulary (Nipple)',
                             'image number', every=7, expect='both left out, reported in skipped_boxes'),
    points_mismatch=Trap("a ROI's NumberOfPoints disagrees with its list", 'image number', every=5,
                         expect='a warning; the list is used'),
    rois_mismatch=Trap("the image's NumberOfROIs disagrees with its list", 'image number', every=11,
                       expect='a warning; the list is used'),
    birads_4abc=Trap('Bi-Rads 4a, 4b, 4c', 'image', expect='BI-RADS 4, the text in birads_raw'),
)
FIRST_NUMBER = 20586000  # File Names count up from here
BIRADS_TEXTS = ['1', '2', '3', '4a', '4b', '4c', '5', '6']


def _roi(name: str, pts: list, index: int) -> dict:
    """One ROI of an OsiriX plist, keys in the release's order."""
    single = len(pts) <= 2
    return {'Area': 0.0 if single else 100.0, 'Center': f'({pts[0][0]:.2f}, {pts[0][1]:.2f}, 0.00)', 'Dev': 0.0,
            'IndexInImage': index, 'Max': 0.0, 'Mean': 0.0, 'Min': 0.0, 'Name': name, 'NumberOfPoints': len(pts),
            'Point_mm': [f'({x * 0.07:.4f}, {y * 0.07:.4f}, 0.0)' for x, y in pts],
            'Point_px': [f'({x:.6f}, {y:.6f})' for x, y in pts], 'Total': 0.0,
            'Type': 19 if single else 15}


def _outline(box: tuple, single: bool, spacing: float) -> tuple:
    """(the ROI's points, the box the converter must make of them): one point at the centre and its 1 mm square,
    or a 12-point ellipse and its extent."""
    x0, y0, x1, y1 = box
    if single:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half = 1.0 / spacing / 2
        return [(cx, cy)], (cx - half, cy - half, cx + half, cy + half)
    a = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    pts = [((x0 + x1) / 2 + np.cos(t) * (x1 - x0) / 2, (y0 + y1) / 2 + np.sin(t) * (y1 - y0) / 2) for t in a]
    return pts, (min(q[0] for q in pts), min(q[1] for q in pts), max(q[0] for q in pts), max(q[1] for q in pts))


class _Release:
    def __init__(self, root: str, seed: int, scale: float):
        self.root = root
        self.rng = np.random.default_rng(seed)
        self.cols, self.rows = int(3328 * scale), int(4084 * scale)
        self.spacing = 0.07 / scale
        self.truth = dict(new_truth(TRAPS), single_point_mm=1.0)
        self.csv_rows = [['Patient ID', 'Patient age', 'Laterality', 'View', 'Acquisition date', 'File Name', 'ACR',
                          'Bi-Rads']]
        self.number = FIRST_NUMBER

    def image(self, pid: str, lat: str, view: str, birads_text: str) -> None:
        rng = self.rng
        self.number += 1
        name = str(self.number)
        plan = [str(c) for c in rng.choice(list(INBREAST_NAMES), size=int(rng.integers(1, 3)), replace=False)] \
            if birads_text not in ('1', '2') else []
        image_truth = self.truth['images'][name] = dict(split=None, laterality=lat, view=view, boxes=[])
        geometry = breast(name, lat, view, self.rows, self.cols, int(rng.integers(1 << 30)))
        n_birads = int(birads_text[0])
        box_birads = n_birads if n_birads in (3, 4, 5) else None
        if birads_text[1:]:
            plant(self.truth, 'birads_4abc', name)
        rois, draw = [], []
        for k, cat in enumerate(plan):
            box = place_lesion(geometry, cat, rng.uniform(0.2, 0.8, 2), rng.uniform(0.8, 1.2), self.rows / 3518, rng)
            roi_name = INBREAST_NAMES[cat][int(rng.integers(len(INBREAST_NAMES[cat])))]
            single = cat == 'Suspicious Calcification' and k == 0 and TRAPS['single_point'].on(self.number)
            if single:
                plant(self.truth, 'single_point', name)
            if roi_name != INBREAST_NAMES[cat][0]:
                plant(self.truth, 'misspelt_names', name)
            pts, tb = _outline(box, single, self.spacing)
            draw.append((cat, box))
            tb = (max(tb[0], 0.0), max(tb[1], 0.0), min(tb[2], float(self.cols)), min(tb[3], float(self.rows)))
            image_truth['boxes'].append(dict(category=cat, birads=box_birads, birads_raw=birads_text, pathology=None,
                                             xyxy=tb, planted=None))
            rois.append(_roi(roi_name, pts, k))
        self.plant_roi_traps(name, rois)
        pixels = render_boxes(name, lat, view, self.rows, self.cols, int(rng.integers(1 << 30)),
                              [(c, box_birads, b) for c, b in draw])
        fname = f"{name}_{pid}_MG_{lat}_{'ML' if view == 'MLO' else 'CC'}_ANON.dcm"
        save_dicom(os.path.join(self.root, 'AllDICOMs', fname), np.rint(pixels * 16383).astype(np.uint16), (name,),
                   PixelSpacing=[self.spacing, self.spacing], ImageLaterality=lat, Manufacturer='SIEMENS',
                   ManufacturerModelName='MammoNovation', BitsStored=14, HighBit=13)
        if rois:
            self.write_plist(name, rois)
        self.csv_rows.append([pid[:8], str(int(rng.integers(40, 80))), lat, view, '201001', name,
                              str(int(rng.integers(1, 5))), birads_text])

    def plant_roi_traps(self, name: str, rois: list) -> None:
        if TRAPS['outside_and_unknown'].on(self.number):
            rois.append(_roi('Mass', [(self.cols + 10, 5), (self.cols + 30, 5), (self.cols + 30, 20)], len(rois)))
            rois.append(_roi('Nipple', [(10, 10), (20, 10), (20, 20)], len(rois)))
            plant(self.truth, 'outside_and_unknown', name)
            self.truth['expected_skips'] += [dict(key=name, reason='outside'), dict(key=name, reason='name')]
        if rois and TRAPS['points_mismatch'].on(self.number):
            rois[0]['NumberOfPoints'] += 1
            plant(self.truth, 'points_mismatch', name)

    def write_plist(self, name: str, rois: list) -> None:
        extra = 1 if TRAPS['rois_mismatch'].on(self.number) else 0
        if extra:
            plant(self.truth, 'rois_mismatch', name)
        doc = {'Images': [{'ImageIndex': 0, 'NumberOfROIs': len(rois) + extra, 'ROIs': rois}]}
        os.makedirs(os.path.join(self.root, 'AllXML'), exist_ok=True)
        with atomic_path(os.path.join(self.root, 'AllXML', f'{name}.xml')) as tmp, open(tmp, 'wb') as fh:
            plistlib.dump(doc, fh)


def write_inbreast(root: str, patients: int = 8, seed: int = 0, scale: float = 0.08) -> dict:
    """INbreast with ``TRAPS`` planted, and normal images without XML."""
    release = _Release(root, seed, scale)
    for p in range(patients):
        pid = f'{int(release.rng.integers(1 << 60)):016x}'
        for lat in 'LR':
            birads_text = str(release.rng.choice(BIRADS_TEXTS)) if p % 3 else '1'
            for view in ('CC', 'MLO'):
                release.image(pid, lat, view, birads_text)
    write_text(os.path.join(root, 'INbreast.csv'), '\n'.join(';'.join(r) for r in release.csv_rows) + '\n')
    return release.truth
