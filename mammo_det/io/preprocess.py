"""A mammogram (DICOM or raster) -> the converted image: the one preprocessing that the converter and inference
both run."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from . import dicom as dio
from . import geometry as geo
from .image import ImageError, StoredImage


def preprocess(path: str, *, boxes: Optional[Sequence] = None, max_size: Optional[int] = 2048, bit_depth: int = 8,
               crop: bool = True, voi: str = 'auto', window_index: int = 0,
               expect_size: Optional[tuple] = None) -> tuple:
    """Reads a mammogram (:func:`mammo_det.io.read_image`), crops to the breast (never cutting ``boxes``), resizes
    and windows it.

    Args:
        path: the DICOM (or raster) file.
        boxes: xyxy boxes in original pixels the crop must contain (annotations, when converting).
        max_size: longest output side; None keeps the size.
        bit_depth: 8 or 16.
        crop: crop to the breast region.
        voi, window_index: the display transform (:func:`mammo_det.io.dicom.display_lut`).
        expect_size: (width, height) the caller knows the file must have (the CSV's).

    Returns:
        (image, transform, voi description): ``image`` is 2-D uint8/uint16, tissue bright; ``transform`` maps
        boxes both ways (:mod:`mammo_det.io.geometry`).

    Raises:
        ImageError: naming the file.
    """
    from . import read_image

    return preprocess_image(read_image(path), boxes=boxes, max_size=max_size, bit_depth=bit_depth, crop=crop,
                            voi=voi, window_index=window_index, expect_size=expect_size)


def preprocess_image(img: StoredImage, *, boxes: Optional[Sequence] = None, max_size: Optional[int] = 2048,
                     bit_depth: int = 8, crop: bool = True, voi: str = 'auto', window_index: int = 0,
                     expect_size: Optional[tuple] = None) -> tuple:
    """:func:`preprocess` of an image already read (the converter also keeps its header)."""
    path = img.path
    width, height = img.width, img.height
    if expect_size is not None and (width, height) != tuple(expect_size):
        raise ImageError(path, f'image is {width}x{height} but {expect_size[0]}x{expect_size[1]} '
                                              'was expected (CSV width x height)')
    lut, offset, voi_desc = dio.display_lut(img, voi=voi, window_index=window_index, bit_depth=bit_depth)
    region = (0, 0, width, height)
    if crop:
        # Found on an 8x subsample: a few ms, where a full-size threshold costs ~30 ms.
        small = dio.apply_lut(img.pixels[::8, ::8], lut, offset)
        x0, y0, x1, y1 = geo.breast_bbox(small, stride=1, margin=0.0)
        pad = 8 + int(0.01 * max(width, height))
        region = (max(x0 * 8 - pad, 0), max(y0 * 8 - pad, 0), min(x1 * 8 + pad, width), min(y1 * 8 + pad, height))
        if boxes is not None and len(boxes):
            region = geo.grow_to_include(region, np.asarray(boxes, dtype=np.float64), width, height)
    ow, oh = geo.output_size(region[2] - region[0], region[3] - region[1], max_size)
    t = geo.ImageTransform(width, height, tuple(int(v) for v in region), ow, oh)
    # Resize the stored values, then window: the lookup then runs on the small image. With a linear window the
    # two orders differ only where the window clips.
    out = dio.apply_lut(geo.crop_and_resize(img.pixels, t), lut, offset)
    return out, t, voi_desc
