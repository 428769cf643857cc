"""What the synthetic releases of the public datasets share: lesions drawn by the VinDr-Mammo synthesiser (bright
inside their boxes, shaped by category and BI-RADS, so a model trained on one synthetic set finds them in another),
DICOM and CSV writing, and the declaration of the traps each writer plants."""
from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from mammo_det.fileio import atomic_path

from .vindr import Finding, SynthImage, place_lesion, render_pixels


@dataclass(frozen=True)
class Trap:
    """A trap of the real release that a writer plants: what it is, on which items (1-based, in the writer's
    order: abnormalities, images, patients or films, as ``unit`` says), and what the converter must do with it."""
    what: str
    unit: str
    at: Tuple[int, ...] = ()
    every: int = 0  # also on every n-th item: those with n % every == offset
    offset: int = 0
    expect: str = 'converted as documented'

    def on(self, n: int) -> bool:
        return n in self.at or bool(self.every and n % self.every == self.offset)

    def to_dict(self) -> dict:
        return dict(what=self.what, unit=self.unit, at=list(self.at), every=self.every, offset=self.offset,
                    expect=self.expect)


def new_truth(traps: dict) -> dict:
    """The truth a writer returns (written to ``synth_truth.json``): per image key its split, side, view and boxes;
    the declared traps, each with the keys it was planted on; and what the converter must leave out."""
    return dict(images={}, expected_skips=[], traps={k: dict(t.to_dict(), planted=[]) for k, t in traps.items()})


def plant(truth: dict, trap: str, key: str) -> None:
    truth['traps'][trap]['planted'].append(key)


def breast(key: str, lat: str, view: str, rows: int, cols: int, seed: int, density: str = 'C') -> SynthImage:
    """The synthetic breast of one image (Siemens-like geometry, BI-RADS 4, training)."""
    return SynthImage(key, key, key, lat, view, 'siemens', rows, cols, 4, density, 'training', seed)


def uid(*parts) -> str:
    """A DICOM UID made from parts (digits only, under 64 characters)."""
    digits = str(int(hashlib.md5('/'.join(map(str, parts)).encode()).hexdigest(), 16))[:30]
    return f'1.3.6.1.4.1.9590.100.1.2.{digits}'


def lesion_image(key: str, lat: str, view: str, rows: int, cols: int, seed: int, lesions: List[tuple],
                 density: str = 'C') -> tuple:
    """(display image in [0, 1], boxes): lesions given as (category, BI-RADS, position, size factor), placed in the
    breast as the VinDr synthesiser places them."""
    rng = np.random.default_rng(seed)
    geometry = breast(key, lat, view, rows, cols, seed, density)
    boxes = []
    for cat, _, pos, size in lesions:
        x0, y0, x1, y1 = place_lesion(geometry, cat, np.asarray(pos, float), size, rows / 3518, rng)
        boxes.append((max(x0, 0.0), max(y0, 0.0), min(x1, float(cols)), min(y1, float(rows))))
    findings = [(cat, birads, box) for (cat, birads, _, _), box in zip(lesions, boxes)]
    return render_boxes(key, lat, view, rows, cols, seed, findings, density), boxes


def render_boxes(key: str, lat: str, view: str, rows: int, cols: int, seed: int, findings: List[tuple],
                 density: str = 'C') -> np.ndarray:
    """Display image in [0, 1] with lesions drawn in given boxes: findings as (category, BI-RADS, xyxy)."""
    img = breast(key, lat, view, rows, cols, seed, density)
    img.findings = [Finding([c], b, tuple(float(v) for v in box)) for c, b, box in findings]
    return render_pixels(img)


def save_dicom(path: str, pixels: np.ndarray, uid_parts: tuple, **tags) -> None:
    """A Secondary Capture DICOM, implicit VR little endian, MONOCHROME2 (as CBIS-DDSM's), or with ``tags``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ImplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.7'
    meta.MediaStorageSOPInstanceUID = uid('sop', *uid_parts)
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


def csv_text(rows: List[list]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator='\n').writerows(rows)
    return buf.getvalue()
