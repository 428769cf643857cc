"""Film scans and other raster mammograms (PGM, PNG, TIFF, JPEG), read as stored images without display tags:
the display pipeline then takes its percentile window, as for a DICOM without window or VOI LUT."""
from __future__ import annotations

import os

from .image import ImageError, PathLike, StoredImage

RASTER_SUFFIXES = ('.pgm', '.png', '.tif', '.tiff', '.jpg', '.jpeg')


class RasterError(ImageError):
    """A raster file that is missing or does not decode."""


def is_raster(path: PathLike) -> bool:
    return str(path).lower().endswith(RASTER_SUFFIXES)


def read_raster(path: PathLike) -> StoredImage:
    """Reads a grayscale (or colour, made grayscale) 8- or 16-bit raster file."""
    import cv2
    from pydicom.dataset import Dataset

    path = str(path)
    if not os.path.exists(path):
        raise RasterError(path, 'file not found')
    pixels = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise RasterError(path, 'not a readable image')
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
    return StoredImage(pixels, path, Dataset())
