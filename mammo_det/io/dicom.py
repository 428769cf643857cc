"""Reading mammography DICOMs into display-ready arrays: pure numpy + pydicom, no torch.

The display transform is one lookup table indexed by the stored pixel value. It bakes in, in DICOM order:
modality rescale (slope/intercept), the VOI transform (a window or a VOI LUT), and the polarity flip of
MONOCHROME1, then scales to the output bit depth. Applying it is one `np.take`, which keeps the per-image cost
close to the decode itself (see ``tools/benchmarks/convert_speed.py``).

The VOI choice is explicit (``voi=``):

* ``'auto'`` (default): the first window (WindowCenter/Width with its VOI LUT Function) if the file has one,
  else the first VOI LUT of the VOI LUT Sequence, else a percentile window. Windows come first because every
  VinDr-Mammo profile has one and the vendors' "default" window is the one radiologists see first; pydicom's
  ``apply_voi_lut`` prefers the LUT sequence instead.
* ``'window'``: a window, the ``window_index``-th, or the one whose WindowCenterWidthExplanation contains
  ``window_name`` (case-insensitive). An error if there is none.
* ``'lut'``: the ``window_index``-th LUT of the VOI LUT Sequence. An error if there is none.
* ``'percentile'``: window from the ``percentiles`` of the non-background pixels (files without window tags,
  such as the CBIS-DDSM samples).
* ``'minmax'``: window from the smallest to the largest stored value.

Polarity: tissue is always bright in the output. PhotometricInterpretation MONOCHROME1 is inverted once.
Presentation LUT Shape INVERSE is recorded but never inverts a second time: the standard requires INVERSE on
MONOCHROME1 images for presentation, so it describes the same inversion, and a MONOCHROME2 image stores tissue
bright whatever its presentation intent.

Pixels equal to PixelPaddingValue (or inside the padding range) are set to 0 (black background).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np

PathLike = Union[str, os.PathLike]

VOI_CHOICES = ('auto', 'window', 'lut', 'percentile', 'minmax')


class DicomError(ValueError):
    """A DICOM file cannot be turned into an image; the message names the file."""

    def __init__(self, path: PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f'{path}: {reason}')


class DicomReadError(DicomError):
    """Unreadable, truncated or corrupt file, or pixel data that does not decode."""


class UnsupportedDicomError(DicomError):
    """A valid DICOM that is not a usable mammogram (no pixels, FOR PROCESSING, colour, multi-frame...)."""


@dataclass
class DicomImage:
    """Stored pixels plus the tags the display transform needs."""

    pixels: np.ndarray  # stored values, 2-D, unsigned or signed integers as in the file
    path: str
    photometric: str
    bits_stored: int
    slope: float = 1.0
    intercept: float = 0.0
    windows: list = field(default_factory=list)  # [(center, width, explanation)]
    voi_function: str = 'LINEAR'
    voi_luts: list = field(default_factory=list)  # [(first_mapped, data uint array, bits)]
    padding: Optional[tuple] = None  # (low, high) stored values that are padding, inclusive
    presentation_lut_shape: str = ''

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def _multi(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, '__iter__'):
        return [value]
    return list(value)


def read_dicom(path: PathLike) -> DicomImage:
    """Reads a DICOM file's pixels and display tags.

    Native, RLE and deflated data decode with numpy alone; JPEG 2000 / JPEG-LS need pydicom's decoder plugins
    (``pip install 'mammo-det[codecs]'``).

    Raises:
        DicomReadError: the file is missing, not DICOM, truncated, or its pixel data does not decode.
        UnsupportedDicomError: no pixel data, FOR PROCESSING, not monochrome, or not a single 2-D frame.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = str(path)
    try:
        ds = pydicom.dcmread(path)
    except FileNotFoundError:
        raise DicomReadError(path, 'file not found') from None
    except InvalidDicomError as exc:
        raise DicomReadError(path, f'not a DICOM file ({exc})') from None
    except Exception as exc:  # pydicom raises many types on corrupt headers (EOFError, struct.error, ...)
        raise DicomReadError(path, f'unreadable DICOM header ({type(exc).__name__}: {exc})') from None

    try:
        if 'PixelData' not in ds:
            raise UnsupportedDicomError(path, 'no pixel data (not an image, or the file is truncated)')
        intent = str(ds.get('PresentationIntentType', '')).upper()
        if intent == 'FOR PROCESSING':
            raise UnsupportedDicomError(path, 'FOR PROCESSING image (raw detector data); use the FOR PRESENTATION one')
        photometric = str(ds.get('PhotometricInterpretation', '')).upper()
        if photometric not in ('MONOCHROME1', 'MONOCHROME2'):
            raise UnsupportedDicomError(path, f'PhotometricInterpretation {photometric!r} is not monochrome')
        if int(ds.get('NumberOfFrames', 1) or 1) != 1:
            raise UnsupportedDicomError(path, 'multi-frame image')
        bits_stored = int(ds.get('BitsStored', ds.get('BitsAllocated', 16)))
        if not 1 <= bits_stored <= 16:
            raise UnsupportedDicomError(path, f'BitsStored {bits_stored} outside 1..16')
    except UnsupportedDicomError:
        raise
    except Exception as exc:
        raise DicomReadError(path, f'corrupt image tags ({type(exc).__name__}: {exc})') from None

    try:
        pixels = ds.pixel_array
    except Exception as exc:
        msg = f'{type(exc).__name__}: {exc}'
        if 'plugin' in msg.lower() or 'decoder' in msg.lower() or 'handler' in msg.lower():
            msg += " (compressed data: install the decoders with pip install 'mammo-det[codecs]')"
        raise DicomReadError(path, f'pixel data does not decode ({msg})') from None
    if pixels.ndim != 2 or pixels.dtype.kind not in 'ui' or pixels.dtype.itemsize > 2:
        raise UnsupportedDicomError(path, f'pixel array {pixels.dtype}{pixels.shape} is not one 2-D 8/16-bit frame')

    try:
        img = DicomImage(
            pixels=pixels,
            path=path,
            photometric=photometric,
            bits_stored=bits_stored,
            slope=float(ds.get('RescaleSlope', 1) or 1),
            intercept=float(ds.get('RescaleIntercept', 0) or 0),
            voi_function=str(ds.get('VOILUTFunction', 'LINEAR') or 'LINEAR').upper(),
            presentation_lut_shape=str(ds.get('PresentationLUTShape', '') or '').upper(),
        )
        centers = _multi(ds.get('WindowCenter'))
        widths = _multi(ds.get('WindowWidth'))
        names = _multi(ds.get('WindowCenterWidthExplanation'))
        for i, (c, w) in enumerate(zip(centers, widths)):
            if float(w) > 0:
                img.windows.append((float(c), float(w), str(names[i]) if i < len(names) else ''))
        for item in ds.get('VOILUTSequence', []):
            n, first, bits = (int(v) for v in item.LUTDescriptor)
            n = n or 65536  # 0 means 2**16 entries (PS3.3 C.11.1.1.1)
            data = np.asarray(item.LUTData, dtype=np.int64).ravel()
            if data.size < n:
                raise ValueError(f'VOI LUT has {data.size} entries, its descriptor says {n}')
            img.voi_luts.append((first, data[:n], bits))
        if 'PixelPaddingValue' in ds:
            lo = int(ds.PixelPaddingValue)
            hi = int(ds.get('PixelPaddingRangeLimit', lo))
            img.padding = (min(lo, hi), max(lo, hi))
    except Exception as exc:
        raise DicomReadError(path, f'corrupt display tags ({type(exc).__name__}: {exc})') from None
    return img


def _voi_window(x: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """VOI window (PS3.3 C.11.2.1.2) of modality values ``x``, returned in [0, 1]."""
    if function == 'SIGMOID':
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == 'LINEAR_EXACT':
        return np.clip((x - center) / width + 0.5, 0.0, 1.0)
    # LINEAR: the standard's half-pixel offsets; width 1 is a threshold.
    if width <= 1:
        return (x > center - 0.5).astype(np.float64)
    return np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _percentile_window(img: DicomImage, percentiles: Sequence[float]) -> tuple:
    """(low, high) modality values at the given percentiles of the non-zero-ish pixels, from a subsample."""
    sample = img.pixels[::4, ::4].astype(np.float64) * img.slope + img.intercept
    if img.padding is not None:
        raw = img.pixels[::4, ::4]
        sample = sample[(raw < img.padding[0]) | (raw > img.padding[1])]
    sample = sample.ravel()
    if sample.size == 0:
        return 0.0, 1.0
    # Mammograms are mostly air: take percentiles over the pixels above the darkest decile of the range.
    lo_all, hi_all = float(sample.min()), float(sample.max())
    if img.photometric == 'MONOCHROME1':
        body = sample[sample < hi_all - 0.02 * (hi_all - lo_all)]
    else:
        body = sample[sample > lo_all + 0.02 * (hi_all - lo_all)]
    if body.size < 16:
        body = sample
    lo, hi = np.percentile(body, percentiles)
    return float(lo), float(max(hi, lo + 1))


def display_lut(img: DicomImage, *, voi: str = 'auto', window_index: int = 0, window_name: Optional[str] = None,
                percentiles: Sequence[float] = (0.5, 99.5), bit_depth: int = 8) -> tuple:
    """Builds the lookup table from stored value to output value.

    Args:
        img: what :func:`read_dicom` returned.
        voi: one of ``VOI_CHOICES`` (see the module docstring).
        window_index: which window (``voi='window'``) or LUT (``voi='lut'``) to use.
        window_name: pick the window whose explanation contains this text instead of ``window_index``.
        percentiles: (low, high) for ``voi='percentile'`` and the fallback of ``'auto'``.
        bit_depth: 8 or 16.

    Returns:
        (lut, offset, description): ``out = lut[stored - offset]``; description says which VOI was used.
    """
    if voi not in VOI_CHOICES:
        raise ValueError(f'voi must be one of {VOI_CHOICES}, got {voi!r}')
    if bit_depth not in (8, 16):
        raise ValueError(f'bit_depth must be 8 or 16, got {bit_depth}')
    if img.pixels.dtype.kind == 'i':
        offset = -(1 << (8 * img.pixels.dtype.itemsize - 1))
    else:
        offset = 0
    stored = np.arange(1 << (8 * img.pixels.dtype.itemsize), dtype=np.float64) + offset
    modality = stored * img.slope + img.intercept

    mode = voi
    if mode == 'auto':
        mode = 'window' if img.windows else 'lut' if img.voi_luts else 'percentile'
    if mode == 'window':
        if not img.windows:
            raise UnsupportedDicomError(img.path, 'voi=window but the file has no WindowCenter/WindowWidth')
        if window_name is not None:
            hits = [w for w in img.windows if window_name.lower() in w[2].lower()]
            if not hits:
                names = [w[2] for w in img.windows]
                raise UnsupportedDicomError(img.path, f'no window named like {window_name!r} among {names}')
            center, width, name = hits[0]
        else:
            if window_index >= len(img.windows):
                raise UnsupportedDicomError(
                    img.path, f'window_index {window_index} but the file has {len(img.windows)} window(s)')
            center, width, name = img.windows[window_index]
        y = _voi_window(modality, center, width, img.voi_function)
        desc = f'window {window_index if window_name is None else name!r} C={center:g} W={width:g} {img.voi_function}'
    elif mode == 'lut':
        if window_index >= len(img.voi_luts):
            raise UnsupportedDicomError(
                img.path, f'voi=lut with index {window_index} but the file has {len(img.voi_luts)} VOI LUT(s)')
        first, data, bits = img.voi_luts[window_index]
        idx = np.clip(np.rint(modality).astype(np.int64) - first, 0, len(data) - 1)
        # LUT Descriptor bit counts are often wrong in the wild; trust the data when it exceeds them.
        top = max(float((1 << bits) - 1), float(data.max()), 1.0)
        y = data[idx] / top
        desc = f'VOI LUT {window_index} ({len(data)} entries)'
    else:
        if mode == 'minmax':
            vals = img.pixels.astype(np.float64) * img.slope + img.intercept
            lo, hi = float(vals.min()), float(vals.max())
        else:
            lo, hi = _percentile_window(img, percentiles)
        y = np.clip((modality - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
        desc = f'{mode} window [{lo:g}, {hi:g}]'

    if img.photometric == 'MONOCHROME1':
        y = 1.0 - y
    top = 255 if bit_depth == 8 else 65535
    lut = np.rint(y * top).astype(np.uint8 if bit_depth == 8 else np.uint16)
    if img.padding is not None:
        lo, hi = img.padding
        lut[max(lo - offset, 0):max(hi - offset + 1, 0)] = 0
    return lut, offset, desc


def apply_lut(pixels: np.ndarray, lut: np.ndarray, offset: int = 0) -> np.ndarray:
    """``lut[pixels - offset]`` without a temporary of the image's size when offset is 0."""
    if offset:
        return np.take(lut, pixels.astype(np.int64) - offset)
    return np.take(lut, pixels)


def to_display(img: DicomImage, **kwargs) -> np.ndarray:
    """The whole image through :func:`display_lut` (keyword arguments as there)."""
    lut, offset, _ = display_lut(img, **kwargs)
    return apply_lut(img.pixels, lut, offset)
