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
# Category draw weights follow the real label counts (shared/VINDR_MAMMO.md), lesions only.
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


def plan_dataset(studies: int, seed: int = 0, scale: float = 1.0, positive_rate: float = 0.3,
                 test_fraction: float = 0.2) -> List[SynthImage]:
    """Decides every image, label and box (cheap); :func:`render_dicom` draws the pixels later."""
    rng = np.random.default_rng(seed)
    images = []
    for s in range(studies):
        study_id = _md5('study', seed, s)
        profile = rng.choice(list(PROFILE_WEIGHTS), p=list(PROFILE_WEIGHTS.values()))
        rows = max(int(round(rng.choice(PROFILES[profile].rows) * scale)), 32)
        cols = max(int(round(rng.choice(PROFILES[profile].cols) * scale)), 32)
        split = 'test' if rng.random() < test_fraction else 'training'
        for lat in ('L', 'R'):
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
                    lesions.append((cats, birads, rng.random(2), rng.uniform(0.7, 1.4)))
                if rng.random() < 0.25:
                    lesions.append(([str(rng.choice(ASSOCIATED))], None, rng.random(2), rng.uniform(0.7, 1.3)))
            for view in ('CC', 'MLO'):
                img = SynthImage(study_id, _md5('series', seed, s, lat, view), _md5('image', seed, s, lat, view),
                                 lat, view, str(profile), rows, cols, breast_birads, density, split,
                                 int(rng.integers(2**31)))
                for cats, birads, pos, size_factor in lesions:
                    # The same lesion on CC and MLO, at a slightly different place (no id links them).
                    jitter = rng.normal(0, 0.05, 2) if view == 'MLO' else np.zeros(2)
                    img.findings.append(Finding(cats, birads, place_lesion(img, cats[0], pos + jitter, size_factor,
                                                                           scale, rng)))
                images.append(img)
    return images


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
    if img.view == 'MLO':  # pectoral muscle: a bright triangle at the chest wall, top
        x_wall = 0 if img.laterality == 'L' else cols - 1
        x_tip = int(cols * 0.3) if img.laterality == 'L' else int(cols * 0.7)
        pts = np.array([[x_wall, 0], [x_tip, 0], [x_wall, int(rows * 0.35)]], np.int32)
        cv2.fillPoly(out, [pts], 0.62)
    for f in img.findings:
        for cat in f.categories:
            _draw_lesion(out, cat, f.birads, f.box, rng)
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
            rows.append(common + [str([NO_FINDING]), '', '', '', '', '', im.split])
        for f in im.findings:
            rows.append(common + [str(f.categories), '' if f.birads is None else f'BI-RADS {f.birads}',
                                  *map(_fmt_box, f.box), im.split])
        breast_rows.append(common + [im.split])
        meta_rows.append([im.image_id, im.series_id, f'0{40 + int(im.seed) % 40}Y', im.view, im.laterality,
                          PROFILES[im.profile].photometric, im.rows, im.cols, PROFILES[im.profile].manufacturer,
                          PROFILES[im.profile].model])
    for name, header, body in (('finding_annotations.csv', FINDING_HEADER, rows),
                               ('breast-level_annotations.csv', BREAST_HEADER, breast_rows),
                               ('metadata.csv', METADATA_HEADER, meta_rows)):
        write_csv(os.path.join(root, name), body, header)


def _render_one(args) -> None:
    img, root = args
    render_dicom(img, os.path.join(root, 'images', img.study_id, f'{img.image_id}.dicom'))


def write_dataset(root: str, studies: int = 20, seed: int = 0, scale: float = 1.0, workers: int = 1,
                  positive_rate: float = 0.3, progress: bool = True) -> List[SynthImage]:
    """Writes a synthetic VinDr-Mammo release to ``root`` and returns its plan (the ground truth)."""
    from tqdm import tqdm

    images = plan_dataset(studies, seed=seed, scale=scale, positive_rate=positive_rate)
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
