"""Synthetic VinDr-Mammo: the real layout, CSV formats and DICOM profiles, with lesions a detector can learn.

Nothing here comes from the credentialed data; the structure follows the release (``docs/datasets.md``):

* ``finding_annotations.csv``, ``breast-level_annotations.csv``, ``metadata.csv`` and
  ``images/<study_id>/<image_id>.dicom``, 4 images a study, ids are 32-hex md5 digests;
* three acquisition profiles: Siemens-like (MONOCHROME2, window + VOI LUT Sequence of 5 LUTs),
  Planmed-like (MONOCHROME1, one window, Presentation LUT Shape INVERSE, a padded border) and IMS-like
  (MONOCHROME2, five windows, LINEAR or SIGMOID VOI function);
* the encodings the standard allows for the display tags, spread over the files (``encoding`` of
  :func:`render_dicom`): Siemens-like LUT Data as US, as OW, or in an implicit VR file (where it reads back as
  OW); Planmed- and IMS-like files with an identity Modality LUT Sequence instead of rescale slope/intercept.
  The display of every file is the same whatever its encoding;
* the edge cases: multi-label boxes, boxes past the image edges, associated features without BI-RADS,
  a majority of negative images, left breasts on the left and right breasts on the right.

Lesions are planted bright inside their boxes. Their shape depends on the category and their look on the
finding BI-RADS (3 smooth and faint, 4 brighter, 5 brightest and spiculated), so a model can learn both.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import cv2
import numpy as np

from mammo_det.fileio import atomic_path, write_csv
from mammo_det.vocab import BIRADS_VALUES, FINDING_CATEGORIES, NO_FINDING

FINDING_HEADER = ['study_id', 'series_id', 'image_id', 'laterality', 'view_position', 'height', 'width',
                  'breast_birads', 'breast_density', 'finding_categories', 'finding_birads',
                  'xmin', 'ymin', 'xmax', 'ymax', 'split']
BREAST_HEADER = ['study_id', 'series_id', 'image_id', 'laterality', 'view_position', 'height', 'width',
                 'breast_birads', 'breast_density', 'split']
METADATA_HEADER = ['SOP Instance UID', 'Series Instance UID', "Patient's Age", 'View Position', 'Image Laterality',
                   'Photometric Interpretation', 'Rows', 'Columns', 'Manufacturer', "Manufacturer's Model Name"]



@dataclass(frozen=True)
class Profile:
    """One acquisition profile of the release: the image sizes it writes and its header values."""
    rows: tuple  # choices
    cols: tuple  # choices
    photometric: str
    manufacturer: str
    model: str


PROFILES = {
    'siemens': Profile((3518,), (2800,), 'MONOCHROME2', 'SIEMENS', 'Mammomat Inspiration'),
    'planmed': Profile((2812,), (2012,), 'MONOCHROME1', 'Planmed', 'Planmed Nuance'),
    'ims': Profile((3580,), (2531, 2812), 'MONOCHROME2', 'IMS s.r.l.', 'GIOTTO IMAGE 3DL'),
}
PROFILE_WEIGHTS = {'siemens': 0.7, 'planmed': 0.2, 'ims': 0.1}
ASSOCIATED = ('Suspicious Lymph Node', 'Skin Thickening', 'Skin Retraction', 'Nipple Retraction')
# Category draw weights follow the published VinDr-Mammo label counts, lesions only.
LESION_WEIGHTS = {'Mass': 989, 'Suspicious Calcification': 428, 'Focal Asymmetry': 216,
                  'Architectural Distortion': 95, 'Asymmetry': 77, 'Global Asymmetry': 20}
# Box side (original pixels) median per category, scaled with the image.
SIZE = {'Mass': 236, 'Suspicious Calcification': 190, 'Focal Asymmetry': 300, 'Architectural Distortion': 260,
        'Asymmetry': 380, 'Suspicious Lymph Node': 150, 'Skin Thickening': 260, 'Nipple Retraction': 180,
        'Global Asymmetry': 800, 'Skin Retraction': 160}
LOW, HIGH = 80, 3900  # stored values of air and of the brightest tissue (12 bits stored)


def _md5(*parts) -> str:
    return hashlib.md5('/'.join(str(p) for p in parts).encode()).hexdigest()


@dataclass
class Finding:
    categories: List[str]
    birads: Optional[int]
    box: tuple  # xmin, ymin, xmax, ymax in original pixels; may run past the image (real edge case)
    lesion_id: Optional[str] = None  # the same for the CC and the MLO box of one lesion of a breast


@dataclass
class SynthImage:
    study_id: str
    series_id: str
    image_id: str
    laterality: str
    view: str
    profile: str
    rows: int
    cols: int
    breast_birads: int
    density: str
    split: str
    seed: int
    findings: List[Finding] = field(default_factory=list)
    pectoral: tuple = (0.3, 0.35)  # MLO: the muscle's edge from (x_tip, 0) to the chest wall at y_tip (fractions)
    nipple: Optional[tuple] = None  # drawn as a small bump on the skin line where given (x, y of its tip)
    distractors: List[tuple] = field(default_factory=list)  # unannotated lesion-like blobs (xyxy), one view only
    spacing: Optional[float] = None  # mm per pixel (square), written as Pixel Spacing


# Pixel Spacing (mm) of each profile at full size; a synthetic image of scale s has spacing / s.
SPACING_MM = {'siemens': 0.085, 'planmed': 0.083, 'ims': 0.1}
DEPTH_SCATTER_MM = 3.0  # how much a lesion's nipple depth differs between its CC and its MLO view (1 sd)


def plan_dataset(studies: int, seed: int = 0, scale: float = 1.0, positive_rate: float = 0.3,
                 test_fraction: float = 0.2, distractors: float = 0.0) -> List[SynthImage]:
    """Decides every image, label and box (cheap); :func:`render_dicom` draws the pixels later.

    Each breast has a CC and an MLO view with a nipple and (MLO) a pectoral muscle; each lesion is one object of the
    breast, placed in both views at its depth from the nipple along the nipple axis (with the few millimetres of
    scatter real projections have) and its own lateral position in each; ``distractors`` unannotated lesion-like
    blobs per image on average, each in one view only (what a second view helps to reject).
    """
    rng = np.random.default_rng(seed)
    images = []
    for s in range(studies):
        study_id = _md5('study', seed, s)
        profile = str(rng.choice(list(PROFILE_WEIGHTS), p=list(PROFILE_WEIGHTS.values())))
        rows = max(int(round(rng.choice(PROFILES[profile].rows) * scale)), 32)
        cols = max(int(round(rng.choice(PROFILES[profile].cols) * scale)), 32)
        split = 'test' if rng.random() < test_fraction else 'training'
        for lat in ('L', 'R'):
            breast_birads, density, lesions = _plan_breast(rng, positive_rate)
            views = {}
            for view in ('CC', 'MLO'):
                img = SynthImage(study_id, _md5('series', seed, s, lat, view), _md5('image', seed, s, lat, view),
                                 lat, view, profile, rows, cols, breast_birads, density, split,
                                 int(rng.integers(2**31)), spacing=SPACING_MM[profile] / scale)
                if view == 'MLO':
                    img.pectoral = (float(rng.uniform(0.22, 0.38)), float(rng.uniform(0.28, 0.45)))
                img.nipple = view_geometry(img).tip
                views[view] = img
            for k, (cats, birads, depth, lateral, size_factor) in enumerate(lesions, 1):
                d_mm = None
                for view, img in views.items():
                    geo = view_geometry(img)
                    if cats[0] in SKIN_FINDINGS:
                        box = place_lesion(img, cats[0], np.array([depth, lateral]), size_factor, scale, rng)
                    else:
                        # the lesion's depth in mm is the breast's; its MLO view scatters a few millimetres
                        d_mm = depth * geo.depth_mm if d_mm is None else \
                            d_mm + float(rng.normal(0, DEPTH_SCATTER_MM))
                        box = _lesion_box(geo, cats[0], d_mm, float(rng.uniform(-1, 1)) if view == 'MLO' else
                                          lateral, size_factor, scale, rng)
                    img.findings.append(Finding(cats, birads, box, f'{lat}{k}'))
            for img in views.values():
                geo = view_geometry(img)
                for _ in range(int(rng.poisson(distractors))):
                    img.distractors.append(_lesion_box(geo, 'Mass', float(rng.uniform(0.2, 0.8)) * geo.depth_mm,
                                                       float(rng.uniform(-1, 1)), rng.uniform(0.8, 1.3), scale, rng))
                images.append(img)
    return images


SKIN_FINDINGS = ('Skin Thickening', 'Skin Retraction', 'Nipple Retraction')


def _plan_breast(rng: np.random.Generator, positive_rate: float) -> tuple:
    """(breast BI-RADS, density, lesions as (categories, BI-RADS, depth fraction, lateral position, size factor))."""
    if rng.random() < positive_rate:
        breast_birads = int(rng.choice(BIRADS_VALUES, p=[0.45, 0.4, 0.15]))
    else:
        breast_birads = int(rng.choice([1, 2], p=[0.75, 0.25]))
    density = str(rng.choice(list('ABCD'), p=[0.02, 0.1, 0.73, 0.15]))
    lesions = []
    if breast_birads >= 3:
        for k in range(int(rng.integers(1, 3))):
            cat = str(rng.choice(list(LESION_WEIGHTS), p=np.array(list(LESION_WEIGHTS.values()))
                                 / sum(LESION_WEIGHTS.values())))
            # The breast's label is the highest of its findings (finding BI-RADS <= breast BI-RADS).
            birads = breast_birads if k == 0 else int(rng.integers(3, breast_birads + 1))
            cats = [cat]
            if cat == 'Suspicious Calcification' and rng.random() < 0.15:
                cats.append('Focal Asymmetry')  # a multi-label box
            lesions.append((cats, birads, float(rng.uniform(0.2, 0.75)), float(rng.uniform(-1, 1)),
                            rng.uniform(0.7, 1.4)))
        if rng.random() < 0.25:
            lesions.append(([str(rng.choice(ASSOCIATED))], None, float(rng.random()), float(rng.random()),
                            rng.uniform(0.7, 1.3)))
    return breast_birads, density, lesions


@dataclass(frozen=True)
class ViewGeometry:
    """One view of a synthetic breast, in its image's pixels: the breast ellipse against the chest-wall edge, the
    chest-wall line (CC: the edge; MLO: the pectoral muscle's edge), the nipple at the skin line farthest from it,
    and the nipple axis (unit vector from the nipple towards the chest wall) and its perpendicular."""
    rows: int
    cols: int
    ellipse: tuple  # cx, cy, ax, ay
    chest_wall: tuple  # two points
    nipple: tuple  # on the ellipse
    tip: tuple  # of the nipple's bump, the landmark
    axis: tuple
    across: tuple
    spacing: float

    @property
    def depth_mm(self) -> float:
        """Distance from the nipple (tip) to the chest-wall line, mm."""
        return _line_distance(self.tip, self.chest_wall) * self.spacing

    def inside(self, x: float, y: float) -> bool:
        cx, cy, ax, ay = self.ellipse
        if not (0 <= x < self.cols and 0 <= y < self.rows) or ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 > 1:
            return False
        (x0, y0), (x1, y1) = self.chest_wall
        if x0 != x1:  # MLO: on the nipple's side of the muscle's edge
            side = (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)
            nipple = (x1 - x0) * (self.nipple[1] - y0) - (y1 - y0) * (self.nipple[0] - x0)
            return side * nipple > 0
        return True


def _line_distance(p: tuple, line: tuple) -> float:
    (x0, y0), (x1, y1) = line
    return abs((p[0] - x0) * (y1 - y0) - (p[1] - y0) * (x1 - x0)) / max(np.hypot(x1 - x0, y1 - y0), 1e-9)


def view_geometry(img: SynthImage) -> ViewGeometry:
    """The geometry :func:`render_pixels` draws for ``img`` (also the landmarks' truth)."""
    cx, cy, ax, ay = _breast_geometry(img)
    wall_x = 0.0 if img.laterality == 'L' else float(img.cols)
    out = 1.0 if img.laterality == 'L' else -1.0  # from the chest wall towards the nipple, along x
    if img.view == 'MLO':
        x_tip, y_tip = img.pectoral
        chest = ((wall_x + out * img.cols * x_tip, 0.0), (wall_x, img.rows * y_tip))
    else:
        chest = ((wall_x, 0.0), (wall_x, float(img.rows)))
    theta = np.linspace(-np.pi / 2, np.pi / 2, 721)
    pts = np.stack([cx + out * ax * np.cos(theta), cy + ay * np.sin(theta)], 1)
    pts = pts[(pts[:, 0] >= 0) & (pts[:, 0] < img.cols) & (pts[:, 1] >= 0) & (pts[:, 1] < img.rows)]
    dist = np.array([_line_distance(p, chest) for p in pts])
    nipple = tuple(map(float, pts[int(np.argmax(dist))]))
    (x0, y0), (x1, y1) = chest
    normal = np.array([y1 - y0, -(x1 - x0)], np.float64)
    normal /= np.linalg.norm(normal)
    if normal[0] * out > 0:
        normal = -normal  # towards the chest wall
    bump = max(img.cols * 0.012, 1.5)
    tip = (nipple[0] - normal[0] * 1.6 * bump, nipple[1] - normal[1] * 1.6 * bump)
    return ViewGeometry(img.rows, img.cols, (cx, cy, ax, ay), chest, nipple, tip, tuple(normal),
                        (-float(normal[1]), float(normal[0])), img.spacing or 1.0)


def _lesion_box(geo: ViewGeometry, category: str, depth_mm: float, lateral: float, size_factor: float,
                scale: float, rng: np.random.Generator) -> tuple:
    """The box of a lesion at ``depth_mm`` from the nipple along the axis (kept inside the breast) and at
    ``lateral`` (-1..1) of the breast's extent across the axis there."""
    depth_px = float(np.clip(depth_mm, 0.1 * geo.depth_mm, 0.85 * geo.depth_mm)) / geo.spacing
    px, py = geo.tip[0] + geo.axis[0] * depth_px, geo.tip[1] + geo.axis[1] * depth_px
    extent = []
    for sign in (1, -1):  # how far the breast reaches across the axis, each way
        t = 0.0
        while t < max(geo.rows, geo.cols) and geo.inside(px + sign * t * geo.across[0], py + sign * t * geo.across[1]):
            t += max(geo.cols / 200, 1.0)
        extent.append(t)
    t = lateral * 0.7 * (extent[0] if lateral >= 0 else extent[1])
    x, y = px + t * geo.across[0], py + t * geo.across[1]
    side = SIZE[category] * scale * size_factor
    w, h = side * rng.uniform(0.8, 1.25), side * rng.uniform(0.8, 1.25)
    return (round(float(x - w / 2), 2), round(float(y - h / 2), 2),
            round(float(x + w / 2), 2), round(float(y + h / 2), 2))


def _breast_geometry(img: SynthImage) -> tuple:
    """Chest-wall x, centre y and semi-axes of the breast ellipse (left breast on the left)."""
    cx = 0 if img.laterality == 'L' else img.cols
    cy = img.rows * (0.5 if img.view == 'CC' else 0.55)
    ax = img.cols * (0.72 if img.view == 'CC' else 0.78)
    ay = img.rows * (0.42 if img.view == 'CC' else 0.47)
    return cx, cy, ax, ay


def place_lesion(img: SynthImage, category: str, pos: np.ndarray, size_factor: float, scale: float,
                 rng: np.random.Generator) -> tuple:
    """A lesion's box (xyxy) in the breast of ``img``: skin findings at the skin line, the others at a relative
    radius and angle ``pos`` from the chest wall; sized by its category, ``scale`` and ``size_factor``."""
    cx, cy, ax, ay = _breast_geometry(img)
    side = SIZE[category] * scale * size_factor
    w, h = side * rng.uniform(0.8, 1.25), side * rng.uniform(0.8, 1.25)
    if category in ('Skin Thickening', 'Skin Retraction', 'Nipple Retraction'):
        # At the skin line, where these are seen; the box may run past the image edge (real edge case).
        angle = (float(np.clip(pos[1], 0, 1)) - 0.5) * 1.6
        x = cx + (1 if img.laterality == 'L' else -1) * ax * np.cos(angle) * 0.97
        y = cy + ay * np.sin(angle) * 0.97
    else:
        r = 0.25 + 0.5 * float(np.clip(pos[0], 0, 1))
        angle = (float(np.clip(pos[1], 0, 1)) - 0.5) * 2.2
        x = cx + (1 if img.laterality == 'L' else -1) * ax * r * np.cos(angle)
        y = cy + ay * r * np.sin(angle)
    return (round(float(x - w / 2), 2), round(float(y - h / 2), 2),
            round(float(x + w / 2), 2), round(float(y + h / 2), 2))


def _lowfreq(rng: np.random.Generator, rows: int, cols: int, cells: int = 12) -> np.ndarray:
    small = rng.random((cells, max(int(cells * cols / rows), 2))).astype(np.float32)
    return cv2.resize(small, (cols, rows), interpolation=cv2.INTER_CUBIC)


def _draw_lesion(layer: np.ndarray, category: str, birads: Optional[int], box: tuple,
                 rng: np.random.Generator) -> None:
    """Adds one lesion's brightness to ``layer`` (float32, [0, 1] units) inside ``box``."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    strength = {None: 0.3, 3: 0.25, 4: 0.38, 5: 0.5}[birads]
    patch = np.zeros_like(layer)
    center = (int(round(cx)), int(round(cy)))
    axes = (max(int(w * 0.4), 1), max(int(h * 0.4), 1))
    t = max(int(min(w, h) * 0.06), 1)
    if category == 'Mass':
        cv2.ellipse(patch, center, axes, 0, 0, 360, 1.0, -1)
    elif category == 'Suspicious Calcification':
        n = int(rng.integers(6, 11))
        r = max(int(min(w, h) * 0.09), 1)  # coarse enough to survive the demo's downscaling
        for px, py in zip(rng.uniform(x0 + 0.1 * w, x1 - 0.1 * w, n), rng.uniform(y0 + 0.1 * h, y1 - 0.1 * h, n)):
            cv2.circle(patch, (int(px), int(py)), r, 1.6, -1)
    elif category in ('Focal Asymmetry', 'Asymmetry', 'Global Asymmetry'):
        cv2.ellipse(patch, center, axes, 30 if category == 'Asymmetry' else 0, 0, 360, 0.6, -1)
        cv2.rectangle(patch, (int(cx - w * 0.2), int(cy - h * 0.2)), (int(cx + w * 0.2), int(cy + h * 0.2)), 0.8, -1)
    elif category == 'Architectural Distortion':
        for a in np.linspace(0, np.pi, 7, endpoint=False):
            dx, dy = np.cos(a) * w * 0.45, np.sin(a) * h * 0.45
            cv2.line(patch, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), 1.0, t)
    elif category == 'Suspicious Lymph Node':
        cv2.ellipse(patch, center, axes, 0, 0, 360, 1.0, -1)
        cv2.ellipse(patch, center, (max(axes[0] // 2, 1), max(axes[1] // 2, 1)), 0, 0, 360, 0.3, -1)
    elif category in ('Skin Thickening', 'Skin Retraction'):
        cv2.rectangle(patch, (int(x0 + 0.1 * w), int(y0 + 0.1 * h)), (int(x1 - 0.1 * w), int(y1 - 0.1 * h)),
                      1.0, 2 * t)
    else:  # Nipple Retraction
        pts = np.array([[cx, y0 + 0.1 * h], [x0 + 0.1 * w, y1 - 0.1 * h], [x1 - 0.1 * w, y1 - 0.1 * h]], np.int32)
        cv2.fillPoly(patch, [pts], 1.0)
    if birads == 5:  # spiculated: lines radiating from the centre, a sign of malignancy
        for a in np.linspace(0, 2 * np.pi, 10, endpoint=False):
            cv2.line(patch, center, (int(cx + np.cos(a) * w * 0.48), int(cy + np.sin(a) * h * 0.48)), 1.0, t)
    k = max(int(min(w, h) * (0.12 if birads == 3 else 0.04)) | 1, 1)  # BI-RADS 3: smooth, circumscribed
    x0i, y0i = max(int(x0) - k, 0), max(int(y0) - k, 0)
    x1i, y1i = min(int(np.ceil(x1)) + k, layer.shape[1]), min(int(np.ceil(y1)) + k, layer.shape[0])
    if x1i <= x0i or y1i <= y0i:
        return
    region = patch[y0i:y1i, x0i:x1i]
    if k > 1:
        region = cv2.GaussianBlur(region, (k, k), 0)
    layer[y0i:y1i, x0i:x1i] += strength * region


def render_pixels(img: SynthImage) -> np.ndarray:
    """Display-domain image in [0, 1] (tissue bright), float32, rows x cols."""
    rng = np.random.default_rng(img.seed)
    rows, cols = img.rows, img.cols
    cx, cy, ax, ay = _breast_geometry(img)
    mask = np.zeros((rows, cols), np.uint8)
    cv2.ellipse(mask, (int(cx), int(cy)), (int(ax), int(ay)), 0, 0, 360, 1, -1)
    density = {'A': 0.25, 'B': 0.32, 'C': 0.4, 'D': 0.48}[img.density]
    tissue = density + 0.12 * (_lowfreq(rng, rows, cols) - 0.5)
    out = np.where(mask > 0, tissue, np.float32(0.03)).astype(np.float32)
    if img.nipple is not None:  # a small bump on the skin line
        geo = view_geometry(img)
        bump = max(cols * 0.012, 1.5)
        c = (geo.nipple[0] - geo.axis[0] * 0.6 * bump, geo.nipple[1] - geo.axis[1] * 0.6 * bump)
        cv2.circle(out, (int(round(c[0])), int(round(c[1]))), int(round(bump)), float(tissue.mean()), -1)
    if img.view == 'MLO':  # pectoral muscle: a bright triangle at the chest wall, top
        x_tip, y_tip = img.pectoral
        x_wall = 0 if img.laterality == 'L' else cols - 1
        x_edge = int(cols * x_tip) if img.laterality == 'L' else int(cols * (1 - x_tip))
        pts = np.array([[x_wall, 0], [x_edge, 0], [x_wall, int(rows * y_tip)]], np.int32)
        cv2.fillPoly(out, [pts], 0.62)
    for f in img.findings:
        for cat in f.categories:
            _draw_lesion(out, cat, f.birads, f.box, rng)
    for box in img.distractors:
        _draw_lesion(out, 'Mass', 4, box, rng)
    out += rng.normal(0, 0.012, (rows, cols)).astype(np.float32)
    return np.clip(out, 0.0, 1.0, out=out)


ENCODINGS = ('US', 'OW', 'implicit')


def _stored_pixels(img: SynthImage) -> np.ndarray:
    """The rendered image as 12-bit stored values of its profile (MONOCHROME1: air high, tissue low)."""
    stored = LOW + render_pixels(img) * (HIGH - LOW)
    if PROFILES[img.profile].photometric == 'MONOCHROME1':
        stored = (HIGH + LOW) - stored
    return np.rint(stored).astype(np.uint16)


def _header(img: SynthImage, encoding: str):
    """File meta, identifiers and image pixel tags, the same for every profile."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.1.2'  # Digital Mammography X-Ray, For Presentation
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[img.image_id])
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if encoding == 'implicit' else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[img.study_id])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[img.series_id])
    ds.Modality = 'MG'
    ds.PresentationIntentType = 'FOR PRESENTATION'
    ds.Manufacturer, ds.ManufacturerModelName = PROFILES[img.profile].manufacturer, PROFILES[img.profile].model
    ds.ImageLaterality = img.laterality
    ds.ViewPosition = img.view
    if img.spacing:
        ds.PixelSpacing = [round(img.spacing, 6)] * 2
    ds.PatientID = img.study_id[:16]
    ds.Rows, ds.Columns = img.rows, img.cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = PROFILES[img.profile].photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    return ds


def _lut_item(descriptor: list, data: np.ndarray, vr: str):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.add_new(0x00283002, 'US', descriptor)  # LUT Descriptor: entries, first mapped, bits
    if vr == 'US':
        item.add_new(0x00283006, 'US', data.astype(np.uint16).tolist())  # LUT Data
    else:
        item.add_new(0x00283006, 'OW', data.astype('<u2').tobytes())
    return item


def _display_tags(ds, img: SynthImage, pixels: np.ndarray, encoding: str) -> None:
    """The profile's modality, VOI and presentation tags (and its padded border), in the given encoding."""
    from pydicom.sequence import Sequence as DicomSequence

    center, width = (LOW + HIGH) / 2, (HIGH - LOW) * 1.05  # every vendor's first window spans the tissue
    rng = np.random.default_rng(img.seed + 1)
    lut_vr = 'US' if encoding == 'US' else 'OW'
    if img.profile == 'siemens' or encoding == 'US':
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, 0, 'US'
    else:  # identity Modality LUT instead of rescale: the windows stay in the same units
        item = _lut_item([4096, 0, 12], np.arange(4096), 'OW')
        item.ModalityLUTType = 'US'
        ds.ModalityLUTSequence = DicomSequence([item])
    if img.profile == 'siemens':
        ds.WindowCenter, ds.WindowWidth = center, width
        ds.WindowCenterWidthExplanation = 'linear LUT'
        ds.VOILUTFunction = 'LINEAR'
        ds.PresentationLUTShape = 'IDENTITY'
        x = np.arange(4096, dtype=np.float64)
        items = []
        for c, name in zip((center, center - 300, center + 300, center - 600, center + 600),
                           ('NORMAL', 'HARDER', 'SOFTER', 'HARDEST', 'SOFTEST')):
            items.append(_lut_item([4096, 0, 12], np.rint(4095 / (1 + np.exp(-4 * (x - c) / width))), lut_vr))
            items[-1].LUTExplanation = name
        ds.VOILUTSequence = DicomSequence(items)
    elif img.profile == 'planmed':
        ds.WindowCenter, ds.WindowWidth = center, width
        ds.WindowCenterWidthExplanation = 'Default W/L'
        ds.PresentationLUTShape = 'INVERSE'  # required with MONOCHROME1: the same inversion, not a second one
        ds.PixelPaddingValue = 4095
        pad = max(img.rows // 100, 1)
        pixels[-pad:, :] = 4095  # a padded border row band, as collimated detectors write
    else:
        offsets = (0, -400, 400, -800, 800)
        ds.WindowCenter = [center + o for o in offsets]
        ds.WindowWidth = [width, width * 0.8, width * 0.8, width * 0.6, width * 0.6]
        ds.WindowCenterWidthExplanation = ['Standard', 'Harder', 'Softer', 'Hardest', 'Softest']
        ds.VOILUTFunction = 'SIGMOID' if rng.random() < 0.5 else 'LINEAR'
        ds.PresentationLUTShape = 'IDENTITY'


def render_dicom(img: SynthImage, path: str, *, transfer_syntax: Optional[str] = None,
                 encoding: Optional[str] = None) -> None:
    """Writes ``img`` as a DICOM of its vendor profile to ``path`` (atomically).

    Args:
        transfer_syntax: ``None`` (explicit VR little endian, as VinDr-Mammo) or ``'rle'`` (RLE Lossless).
        encoding: one of ``ENCODINGS``; ``None`` picks one from the image's seed, so a release mixes them.
            ``'US'``: LUT Data as US, rescale slope/intercept; ``'OW'``: LUT Data as OW, and the Planmed- and
            IMS-like profiles carry an identity Modality LUT Sequence instead of rescale; ``'implicit'``: as ``'OW'``
            in implicit VR little endian (LUT Data reads back as OW there), unless ``transfer_syntax`` says
            otherwise.
    """
    from pydicom.uid import RLELossless

    encoding = encoding or ENCODINGS[img.seed % len(ENCODINGS)]
    if encoding not in ENCODINGS:
        raise ValueError(f'encoding must be one of {ENCODINGS}, got {encoding!r}')
    pixels = _stored_pixels(img)
    ds = _header(img, encoding)
    _display_tags(ds, img, pixels, encoding)
    ds.PixelData = pixels.tobytes()
    if transfer_syntax == 'rle':
        ds.compress(RLELossless, encoding_plugin='pydicom')
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)


def _fmt_box(v: float) -> str:
    return f'{v:.2f}'


def write_csvs(images: Sequence[SynthImage], root: str) -> None:
    """Writes the three CSVs in the real formats (Python-list text for categories, empty fields for none)."""
    os.makedirs(root, exist_ok=True)
    rows, breast_rows, meta_rows = [], [], []
    for im in images:
        common = [im.study_id, im.series_id, im.image_id, im.laterality, im.view, im.rows, im.cols,
                  f'BI-RADS {im.breast_birads}', f'DENSITY {im.density}']
        if not im.findings:
            rows.append(common + [str([NO_FINDING]), '', '', '', '', '', im.split, ''])
        for f in im.findings:
            rows.append(common + [str(f.categories), '' if f.birads is None else f'BI-RADS {f.birads}',
                                  *map(_fmt_box, f.box), im.split, f.lesion_id or ''])
        breast_rows.append(common + [im.split])
        meta_rows.append([im.image_id, im.series_id, f'0{40 + int(im.seed) % 40}Y', im.view, im.laterality,
                          PROFILES[im.profile].photometric, im.rows, im.cols, PROFILES[im.profile].manufacturer,
                          PROFILES[im.profile].model])
    # lesion_id: an extra last column of the synthetic release (the real one links no lesion across views)
    for name, header, body in (('finding_annotations.csv', FINDING_HEADER + ['lesion_id'], rows),
                               ('breast-level_annotations.csv', BREAST_HEADER, breast_rows),
                               ('metadata.csv', METADATA_HEADER, meta_rows)):
        write_csv(os.path.join(root, name), body, header)


def _render_one(args) -> None:
    img, root = args
    render_dicom(img, os.path.join(root, 'images', img.study_id, f'{img.image_id}.dicom'))


def release_truth(images: Sequence[SynthImage]) -> dict:
    """What the synthetic release holds (``synth_truth.json``): per image its side, view, pixel spacing, landmarks
    (the nipple's tip and two points of the chest-wall line, pixels), boxes with their lesion ids, and the
    unannotated distractors."""
    out = {}
    for im in images:
        geo = view_geometry(im)
        out[im.image_id] = dict(
            study_id=im.study_id, laterality=im.laterality, view=im.view, split=im.split, spacing=im.spacing,
            nipple=list(geo.tip), chest_wall=[list(p) for p in geo.chest_wall],
            boxes=[dict(categories=f.categories, birads=f.birads, xyxy=list(f.box), lesion_id=f.lesion_id)
                   for f in im.findings], distractors=[list(b) for b in im.distractors])
    return dict(images=out, depth_scatter_mm=DEPTH_SCATTER_MM)


def write_dataset(root: str, studies: int = 20, seed: int = 0, scale: float = 1.0, workers: int = 1,
                  positive_rate: float = 0.3, progress: bool = True, distractors: float = 0.0) -> List[SynthImage]:
    """Writes a synthetic VinDr-Mammo release to ``root`` and returns its plan (the ground truth)."""
    from tqdm import tqdm

    images = plan_dataset(studies, seed=seed, scale=scale, positive_rate=positive_rate, distractors=distractors)
    write_csvs(images, root)
    todo = [(im, root) for im in images
            if not os.path.exists(os.path.join(root, 'images', im.study_id, f'{im.image_id}.dicom'))]
    bar = tqdm(total=len(todo), desc='synth DICOMs', unit='img', disable=not progress)
    if workers > 1 and len(todo) > 1:
        from multiprocessing import get_context
        with get_context('spawn').Pool(workers) as pool:
            for _ in pool.imap_unordered(_render_one, todo):
                bar.update()
    else:
        for item in todo:
            _render_one(item)
            bar.update()
    bar.close()
    return images


assert set(LESION_WEIGHTS) | set(ASSOCIATED) <= set(FINDING_CATEGORIES)
