"""The stored image every reader returns, and the error every reader raises."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from mammo_det.errors import UserError

PathLike = Union[str, os.PathLike]


class ImageError(UserError, ValueError):
    """A file cannot be turned into an image; the message names the file."""

    def __init__(self, path: PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f'{path}: {reason}')


@dataclass
class StoredImage:
    """Stored pixels plus the file's header: a DICOM's (pixel data dropped; display tags are read from it on
    demand), or an empty one for a raster file, which has no modality or VOI tags and stores tissue bright."""

    pixels: np.ndarray  # stored values, 2-D, unsigned or signed integers as in the file
    path: str
    header: Any  # pydicom Dataset

    @property
    def photometric(self) -> str:
        return str(self.header.get('PhotometricInterpretation', 'MONOCHROME2')).upper()

    @property
    def signed(self) -> bool:
        return self.pixels.dtype.kind == 'i'

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])
