"""Reading mammography DICOMs into display-ready arrays: pure numpy + pydicom, no torch.

The display transform is one lookup table indexed by the stored pixel value. It is built by running the DICOM
display pipeline on every possible stored value, in the standard's order: the Modality LUT (Modality LUT Sequence,
or rescale slope/intercept through ``pydicom.pixels.apply_modality_lut``), the VOI transform (a window through
``pydicom.pixels.apply_windowing``, or a VOI LUT), the polarity flip of MONOCHROME1, then scaling to the output bit
depth. Applying it to an image is one ``np.take``, which keeps the per-image cost close to the decode itself
(``tools/benchmarks/convert_speed.py``).

Display tags are parsed only when the chosen transform needs them: a broken VOI LUT never stops an image displayed
with its window, and a tag that is needed but unusable raises :class:`DicomTagError` naming the file and the tag.

LUT items (Modality and VOI LUT Sequences) decode here rather than through pydicom's ``apply_voi`` /
``apply_modality_lut``, which the tests use as the reference: those reject three encodings the standard or real
files use: LUT Data read back with VR SS (values above 32767 come back negative), 8-bit entries packed two to a
16-bit word, and a signed first mapped value written as US. Everything else (US or OW, explicit or implicit VR,
0 entries meaning 65536) gives pydicom's values exactly.

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
* ``'minmax'``: window from the smallest to the largest modality value.

Polarity: tissue is always bright in the output. PhotometricInterpretation MONOCHROME1 is inverted once, after the
VOI transform. Presentation LUT Shape INVERSE is recorded but never inverts a second time: the standard requires
INVERSE on MONOCHROME1 images for presentation, so it describes the same inversion, and a MONOCHROME2 image stores
tissue bright whatever its presentation intent.

Pixels equal to PixelPaddingValue (or inside the padding range) are set to 0 (black background).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from .image import ImageError, PathLike, StoredImage

VOI_CHOICES = ('auto', 'window', 'lut', 'percentile', 'minmax')


class DicomError(ImageError):
    """A DICOM file cannot be turned into an image; the message names the file."""


class DicomReadError(DicomError):
    """Unreadable, truncated or corrupt file, or pixel data that does not decode."""


class UnsupportedDicomError(DicomError):
    """A valid DICOM that is not a usable mammogram (no pixels, FOR PROCESSING, colour, multi-frame...)."""


class DicomTagError(DicomReadError):
    """A display tag the chosen transform needs is present but unusable; ``tag`` names it."""

    def __init__(self, path: PathLike, tag: str, reason: str):
        self.tag = tag
        super().__init__(path, f'{tag}: {reason}')


def _multi(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, '__iter__'):
        return [value]
    return list(value)


def _open(path: str):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path)
    except FileNotFoundError:
        raise DicomReadError(path, 'file not found') from None
    except InvalidDicomError as exc:
        raise DicomReadError(path, f'not a DICOM file ({exc})') from None
    except Exception as exc:  # pydicom raises many types on corrupt headers (EOFError, struct.error, ...)
        raise DicomReadError(path, f'unreadable DICOM header ({type(exc).__name__}: {exc})') from None


def _check_image_tags(ds, path: str) -> None:
    """A single FOR PRESENTATION monochrome frame with pixel data, or a typed error saying what it is instead."""
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


def _decode(ds, path: str) -> np.ndarray:
    try:
        pixels = ds.pixel_array
    except Exception as exc:
        msg = f'{type(exc).__name__}: {exc}'
        if 'plugin' in msg.lower() or 'decoder' in msg.lower() or 'handler' in msg.lower():
            msg += " (compressed data: install the decoders with pip install 'mammo-det[codecs]')"
        raise DicomReadError(path, f'pixel data does not decode ({msg})') from None
    if pixels.ndim != 2 or pixels.dtype.kind not in 'ui' or pixels.dtype.itemsize > 2:
        raise UnsupportedDicomError(path, f'pixel array {pixels.dtype}{pixels.shape} is not one 2-D 8/16-bit frame')
    return pixels


def device(header: Any) -> tuple:
    """(Manufacturer, Manufacturer's Model Name) of a header, stripped; None for an absent or empty tag."""
    def tag(name):
        v = header.get(name)
        v = str(v).strip() if v is not None else ''
        return v or None

    return tag('Manufacturer'), tag('ManufacturerModelName')


def pixel_spacing(header: Any) -> Optional[tuple]:
    """(row spacing, column spacing in mm, the tag it came from) of a header: Pixel Spacing, else Imager Pixel
    Spacing (at the detector; mammograms magnify little); None when neither is usable."""
    for keyword in ('PixelSpacing', 'ImagerPixelSpacing'):
        value = header.get(keyword) if header is not None else None
        try:
            row, col = (float(v) for v in _multi(value))
        except (TypeError, ValueError):
            continue
        if row > 0 and col > 0:
            return row, col, keyword
    return None


def read_device(path: PathLike) -> tuple:
    """:func:`device` of a file, reading only those two tags."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=['Manufacturer', 'ManufacturerModelName'])
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for a broken file
        raise DicomError(path, f'cannot read the header ({exc})') from None
    return device(ds)


def read_dicom(path: PathLike) -> StoredImage:
    """Reads a DICOM file's pixels and header.

    Native, RLE and deflated data decode with numpy alone; JPEG 2000 / JPEG-LS need pydicom's decoder plugins
    (``pip install 'mammo-det[codecs]'``). Display tags are not parsed here (see :func:`display_lut`).

    Raises:
        DicomReadError: the file is missing, not DICOM, truncated, or its pixel data does not decode.
        UnsupportedDicomError: no pixel data, FOR PROCESSING, not monochrome, or not a single 2-D frame.
    """
    path = str(path)
    ds = _open(path)
    _check_image_tags(ds, path)
    pixels = _decode(ds, path)
    del ds.PixelData  # the decoded array is kept; the raw bytes would double the memory
    return StoredImage(pixels=pixels, path=path, header=ds)


# ---- display tags, parsed on demand -------------------------------------------------------------------------------

def _tag(img: StoredImage, keyword: str, parse, default=None):
    """``parse(element)`` for tag ``keyword``, or ``default`` when absent; any failure names the tag."""
    try:
        if keyword not in img.header:
            return default
        return parse(img.header[keyword])
    except DicomError:
        raise
    except Exception as exc:
        raise DicomTagError(img.path, keyword, f'unusable value ({type(exc).__name__}: {exc})') from None


def _words(elem, little_endian: bool) -> np.ndarray:
    """The 16-bit words of a US, SS, OW or UN element as unsigned ints (SS values keep their bit pattern)."""
    value = elem.value
    if isinstance(value, (bytes, bytearray)):
        if len(value) % 2:
            raise ValueError(f'odd byte length {len(value)}')
        return np.frombuffer(value, dtype='<u2' if little_endian else '>u2').astype(np.int64)
    words = np.asarray([int(v) for v in _multi(value)], dtype=np.int64)
    if words.size and (words.min() < -32768 or words.max() > 65535):
        raise ValueError('values outside 16 bits')
    return words & 0xFFFF


def _signed(value: int, elem, img: StoredImage) -> int:
    """A 16-bit word as the signed value it stands for when its element is SS or the pixel data is signed (US or SS
    elements follow Pixel Representation, PS3.3 C.11.1.1.1); values written as their unsigned pattern included."""
    return value - 65536 if value >= 32768 and (elem.VR == 'SS' or img.signed) else value


def _little_endian(img: StoredImage) -> bool:
    encoding = getattr(img.header, 'original_encoding', (None, True))
    return encoding[1] is not False


@dataclass(frozen=True)
class Lut:
    """One decoded LUT item: ``out = data[clip(x - first, 0, len(data) - 1)]``."""

    first: int
    data: np.ndarray  # int64, one entry per input value from ``first``
    bits: int

    def __call__(self, x: np.ndarray) -> np.ndarray:
        idx = np.clip(np.rint(x).astype(np.int64) - self.first, 0, len(self.data) - 1)
        return self.data[idx]


def decode_lut(img: StoredImage, keyword: str, index: int = 0) -> Lut:
    """Item ``index`` of a Modality or VOI LUT Sequence, in any encoding the standard allows.

    LUT Descriptor (entries, first mapped value, bits per entry): 0 entries means 65536; the first value is
    signed when the element is SS or the pixel data is signed (PS3.3 C.11.1.1.1). LUT Data: US, SS, OW or UN,
    explicit or implicit VR, either endianness; 8-bit entries one to a 16-bit word or packed two to a word.
    """
    where = f'{keyword}[{index}]'
    items = _tag(img, keyword, lambda e: list(e.value), [])
    if index >= len(items):
        raise UnsupportedDicomError(img.path, f'{keyword} has {len(items)} item(s), item {index} was asked for')
    item = items[index]
    little = _little_endian(img)
    try:
        desc_elem = item['LUTDescriptor']
        desc = _words(desc_elem, little)
    except KeyError:
        raise DicomTagError(img.path, f'{where}.LUTDescriptor', 'missing') from None
    except Exception as exc:
        raise DicomTagError(img.path, f'{where}.LUTDescriptor', f'unusable ({type(exc).__name__}: {exc})') from None
    if desc.size != 3:
        raise DicomTagError(img.path, f'{where}.LUTDescriptor', f'{desc.size} values, 3 expected')
    entries, first, bits = int(desc[0]) or 65536, _signed(int(desc[1]), desc_elem, img), int(desc[2])
    if not 1 <= bits <= 16:
        raise DicomTagError(img.path, f'{where}.LUTDescriptor', f'{bits} bits per entry, 1..16 expected')
    try:
        data_elem = item['LUTData']
        raw = data_elem.value
        if isinstance(raw, (bytes, bytearray)) and bits <= 8 and len(raw) in (entries, entries + 1):
            data = np.frombuffer(bytes(raw[:entries]), dtype=np.uint8).astype(np.int64)  # packed 8-bit entries
        else:
            data = _words(data_elem, little)
    except KeyError:
        raise DicomTagError(img.path, f'{where}.LUTData', 'missing') from None
    except Exception as exc:
        raise DicomTagError(img.path, f'{where}.LUTData', f'unusable ({type(exc).__name__}: {exc})') from None
    if data.size < entries:
        raise DicomTagError(img.path, f'{where}.LUTData',
                            f'{data.size} entries but the LUT Descriptor says {entries}')
    return Lut(first, data[:entries], bits)


def windows(img: StoredImage) -> list:
    """[(center, width, explanation)] of WindowCenter/WindowWidth; a single value pairs with every other one."""
    centers = _tag(img, 'WindowCenter', lambda e: [float(v) for v in _multi(e.value)], [])
    widths = _tag(img, 'WindowWidth', lambda e: [float(v) for v in _multi(e.value)], [])
    if not centers or not widths:
        return []
    if len(centers) != len(widths) and 1 not in (len(centers), len(widths)):
        raise DicomTagError(img.path, 'WindowWidth', f'{len(widths)} values for {len(centers)} WindowCenter values')
    n = max(len(centers), len(widths))
    names = _tag(img, 'WindowCenterWidthExplanation', lambda e: [str(v) for v in _multi(e.value)], [])
    return [(centers[i if len(centers) > 1 else 0], widths[i if len(widths) > 1 else 0],
             names[i] if i < len(names) else '') for i in range(n)]


def padding(img: StoredImage) -> Optional[tuple]:
    """(low, high) stored values that are padding, inclusive, from PixelPaddingValue / PixelPaddingRangeLimit."""
    def value(elem):
        words = _words(elem, _little_endian(img))
        if words.size != 1:
            raise ValueError(f'{words.size} values, 1 expected')
        return _signed(int(words[0]), elem, img)

    lo = _tag(img, 'PixelPaddingValue', value)
    if lo is None:
        return None
    hi = _tag(img, 'PixelPaddingRangeLimit', value, lo)
    return min(lo, hi), max(lo, hi)


# ---- the display pipeline, on every possible stored value --------------------------------------------------------

def _stored_values(img: StoredImage) -> tuple:
    """(every value the pixel dtype can hold, ascending; offset so that ``index = stored - offset``)."""
    bits = 8 * img.pixels.dtype.itemsize
    offset = -(1 << (bits - 1)) if img.signed else 0
    return np.arange(1 << bits, dtype=np.int64) + offset, offset


def modality(img: StoredImage, stored: np.ndarray) -> np.ndarray:
    """Modality values of ``stored``: the Modality LUT Sequence if present, else rescale slope/intercept."""
    from pydicom.pixels import apply_modality_lut

    if _tag(img, 'ModalityLUTSequence', lambda e: len(e.value), 0):
        return decode_lut(img, 'ModalityLUTSequence')(stored).astype(np.float64)
    for keyword in ('RescaleSlope', 'RescaleIntercept'):
        _tag(img, keyword, lambda e: float(e.value))  # a garbled value fails here, naming the tag
    return np.asarray(apply_modality_lut(stored, img.header), dtype=np.float64)


def _window_index(img: StoredImage, wins: list, window_index: int, window_name: Optional[str]) -> int:
    if window_name is not None:
        hits = [i for i, w in enumerate(wins) if window_name.lower() in w[2].lower()]
        if not hits:
            raise UnsupportedDicomError(img.path, f'no window named like {window_name!r} among {[w[2] for w in wins]}')
        return hits[0]
    if window_index >= len(wins):
        raise UnsupportedDicomError(img.path, f'window_index {window_index} but the file has {len(wins)} window(s)')
    return window_index


def apply_window(img: StoredImage, x: np.ndarray, index: int) -> np.ndarray:
    """Window ``index`` of modality values ``x`` through ``pydicom.pixels.apply_windowing``, rescaled to [0, 1]."""
    from pydicom.pixels import apply_windowing

    try:
        y = apply_windowing(x, img.header, index)
        # pydicom maps onto the window's output range; -inf and +inf land exactly on its two ends.
        y_min, y_max = apply_windowing(np.array([-np.inf, np.inf]), img.header, index)
    except Exception as exc:
        tag = 'VOILUTFunction' if 'Function' in str(exc) else 'WindowWidth'
        raise DicomTagError(img.path, tag, f'unusable window {index} ({exc})') from None
    return (y - y_min) / max(y_max - y_min, 1e-12)


def _percentile_window(img: StoredImage, table: np.ndarray, offset: int, percentiles: Sequence[float],
                       pad: Optional[tuple]) -> tuple:
    """(low, high) modality values at the given percentiles of the non-background pixels, from a subsample;
    ``table[stored - offset]`` is the modality value of a stored value."""
    raw = img.pixels[::4, ::4]
    if pad is not None:
        raw = raw[(raw < pad[0]) | (raw > pad[1])]
    sample = table[raw.ravel().astype(np.int64) - offset]
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


def _has_window(img: StoredImage) -> bool:
    return 'WindowCenter' in img.header and 'WindowWidth' in img.header


def _has_voi_lut(img: StoredImage) -> bool:
    return bool(_tag(img, 'VOILUTSequence', lambda e: len(e.value), 0))


def voi_transform(img: StoredImage, x: np.ndarray, offset: int, *, mode: str = 'auto', window_index: int = 0,
                  window_name: Optional[str] = None, percentiles: Sequence[float] = (0.5, 99.5),
                  pad: Optional[tuple] = None) -> tuple:
    """The VOI transform into [0, 1] of ``x``, the modality values of every stored value (``x[stored - offset]``),
    and a description of the one used."""
    if mode not in VOI_CHOICES:
        raise ValueError(f'voi must be one of {VOI_CHOICES}, got {mode!r}')
    if mode == 'auto':
        mode = 'window' if _has_window(img) else 'lut' if _has_voi_lut(img) else 'percentile'
    if mode == 'window':
        wins = windows(img)
        if not wins:
            raise UnsupportedDicomError(img.path, 'voi=window but the file has no WindowCenter/WindowWidth')
        i = _window_index(img, wins, window_index, window_name)
        center, width, name = wins[i]
        function = _tag(img, 'VOILUTFunction', lambda e: str(e.value or 'LINEAR').upper(), 'LINEAR')
        label = i if window_name is None else repr(name)
        return apply_window(img, x, i), f'window {label} C={center:g} W={width:g} {function}'
    if mode == 'lut':
        if not _has_voi_lut(img):
            raise UnsupportedDicomError(img.path, 'voi=lut but the file has no VOI LUT Sequence')
        lut = decode_lut(img, 'VOILUTSequence', window_index)
        # LUT Descriptor bit counts are often wrong in the wild; trust the data when it exceeds them.
        top = max(float((1 << lut.bits) - 1), float(lut.data.max()), 1.0)
        return lut(x) / top, f'VOI LUT {window_index} ({len(lut.data)} entries)'
    if mode == 'minmax':
        ends = x[[int(img.pixels.min()) - offset, int(img.pixels.max()) - offset]]
        lo, hi = float(ends.min()), float(ends.max())  # a Modality LUT may run downhill
    else:
        lo, hi = _percentile_window(img, x, offset, percentiles, pad)
    return np.clip((x - lo) / max(hi - lo, 1e-6), 0.0, 1.0), f'{mode} window [{lo:g}, {hi:g}]'


def display_lut(img: StoredImage, *, voi: str = 'auto', window_index: int = 0, window_name: Optional[str] = None,
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

    Raises:
        DicomTagError: a tag this transform needs is unusable (tags it does not need are never read).
        UnsupportedDicomError: the chosen VOI does not exist in the file.
    """
    if bit_depth not in (8, 16):
        raise ValueError(f'bit_depth must be 8 or 16, got {bit_depth}')
    stored, offset = _stored_values(img)
    pad = padding(img)
    y, desc = voi_transform(img, modality(img, stored), offset, mode=voi, window_index=window_index,
                            window_name=window_name, percentiles=percentiles, pad=pad)
    if img.photometric == 'MONOCHROME1':
        y = 1.0 - y
    top = 255 if bit_depth == 8 else 65535
    lut = np.rint(np.clip(y, 0.0, 1.0) * top).astype(np.uint8 if bit_depth == 8 else np.uint16)
    if pad is not None:
        lo, hi = pad
        lut[max(lo - offset, 0):max(hi - offset + 1, 0)] = 0
    return lut, offset, desc


def apply_lut(pixels: np.ndarray, lut: np.ndarray, offset: int = 0) -> np.ndarray:
    """``lut[pixels - offset]`` without a temporary of the image's size when offset is 0."""
    if offset:
        return np.take(lut, pixels.astype(np.int64) - offset)
    return np.take(lut, pixels)


def to_display(img: StoredImage, **kwargs) -> np.ndarray:
    """The whole image through :func:`display_lut` (keyword arguments as there)."""
    lut, offset, _ = display_lut(img, **kwargs)
    return apply_lut(img.pixels, lut, offset)
