import numpy as np
import pytest

from mammo_det.io import dicom as dio
from mammo_det.io import StoredImage


def _img(pixels, photometric='MONOCHROME2', windows=(), voi_function=None, voi_luts=(), slope=None, intercept=0.0,
         padding=None, presentation_lut_shape=None):
    """An in-memory DicomImage whose header carries exactly the given display tags (12 bits stored)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = Dataset()
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if windows:
        ds.WindowCenter = [w[0] for w in windows]
        ds.WindowWidth = [w[1] for w in windows]
        ds.WindowCenterWidthExplanation = [w[2] for w in windows]
    if voi_function:
        ds.VOILUTFunction = voi_function
    items = []
    for first, data, bits in voi_luts:
        item = Dataset()
        item.add_new(0x00283002, 'US', [len(data), first, bits])
        item.add_new(0x00283006, 'US', [int(v) for v in data])
        items.append(item)
    if items:
        ds.VOILUTSequence = Sequence(items)
    if padding is not None:
        ds.PixelPaddingValue = padding[0]
    if presentation_lut_shape:
        ds.PresentationLUTShape = presentation_lut_shape
    return StoredImage(pixels=np.asarray(pixels, np.uint16), path='mem.dcm', header=ds)


def test_linear_window_matches_dicom_formula():
    # PS3.3 C.11.2.1.2: c=2048, w=4096 -> y = ((x - 2047.5) / 4095 + 0.5), clipped.
    img = _img([[0, 1000, 2048, 4095]], windows=[(2048.0, 4096.0, '')])
    out = dio.to_display(img, bit_depth=16)
    expected = np.clip((np.array([0, 1000, 2048, 4095]) - 2047.5) / 4095 + 0.5, 0, 1) * 65535
    np.testing.assert_array_equal(out[0], np.rint(expected).astype(np.uint16))


def test_window_clips_outside_and_8bit_scale():
    img = _img([[0, 100, 150, 200, 4000]], windows=[(150.5, 101.0, '')])
    out = dio.to_display(img, voi='window')
    # lower edge: x <= c - 0.5 - (w-1)/2 = 100 -> 0 ; upper: x > 200 -> 255
    assert out[0, 0] == 0 and out[0, 1] == 0 and out[0, 4] == 255
    assert out[0, 2] == round(((150 - 150) / 100 + 0.5) * 255)


def test_sigmoid_window():
    img = _img([[1000, 2000, 3000]], windows=[(2000.0, 1000.0, '')], voi_function='SIGMOID')
    out = dio.to_display(img, bit_depth=16)
    expected = 65535 / (1 + np.exp(-4 * (np.array([1000, 2000, 3000]) - 2000) / 1000))
    np.testing.assert_array_equal(out[0], np.rint(expected).astype(np.uint16))


def test_monochrome1_inverted_once_even_with_inverse_presentation():
    px = [[0, 4095]]
    m2 = dio.to_display(_img(px, windows=[(2048.0, 4096.0, '')]))
    m1 = dio.to_display(_img(px, photometric='MONOCHROME1', presentation_lut_shape='INVERSE',
                             windows=[(2048.0, 4096.0, '')]))
    assert m2[0, 0] == 0 and m2[0, 1] == 255
    assert m1[0, 0] == 255 and m1[0, 1] == 0  # stored low = dense tissue in MONOCHROME1 -> bright
    m2_inv = dio.to_display(_img(px, presentation_lut_shape='INVERSE', windows=[(2048.0, 4096.0, '')]))
    np.testing.assert_array_equal(m2_inv, m2)  # INVERSE never flips a second time


def test_rescale_slope_intercept_applied_before_window():
    img = _img([[10, 20]], slope=2.0, intercept=-10.0, windows=[(20.0, 40.0, '')], voi_function='LINEAR_EXACT')
    out = dio.to_display(img, bit_depth=16)  # modality 10, 30 -> (x-20)/40+0.5 = 0.25, 0.75
    np.testing.assert_array_equal(out[0], np.rint(np.array([0.25, 0.75]) * 65535).astype(np.uint16))


def test_voi_lut_sequence_and_named_window():
    lut_data = np.array([0, 100, 200, 255])
    img = _img([[0, 1, 2, 3, 9]], voi_luts=[(0, lut_data, 8)],
               windows=[(1.0, 2.0, 'SOFT'), (2.0, 4.0, 'Standard')])
    out = dio.to_display(img, voi='lut')
    np.testing.assert_array_equal(out[0], [0, 100, 200, 255, 255])  # past the LUT: its last entry
    named = dio.to_display(img, voi='window', window_name='standard', bit_depth=16)
    first = dio.to_display(img, voi='window', window_index=1, bit_depth=16)
    np.testing.assert_array_equal(named, first)
    with pytest.raises(dio.UnsupportedDicomError, match='no window named'):
        dio.display_lut(img, voi='window', window_name='bone')


def test_auto_prefers_window_then_lut_then_percentile():
    px = np.arange(4096, dtype=np.uint16).reshape(64, 64)
    assert 'window' in dio.display_lut(_img(px, windows=[(1.0, 2.0, '')], voi_luts=[(0, np.arange(4), 8)]))[2]
    assert 'VOI LUT' in dio.display_lut(_img(px, voi_luts=[(0, np.arange(4), 8)]))[2]
    lut, off, desc = dio.display_lut(_img(px))
    assert desc.startswith('percentile')
    out = dio.apply_lut(px, lut, off)
    assert out.min() == 0 and out.max() == 255


def test_padding_value_masked():
    img = _img([[0, 2000, 4095]], photometric='MONOCHROME1', windows=[(2048.0, 4096.0, '')], padding=(4095, 4095))
    out = dio.to_display(img)
    assert out[0, 2] == 0  # padding is background, not the white that inversion would make of 4095
    assert out[0, 0] == 255


def test_read_errors_name_the_file(tmp_path):
    missing = tmp_path / 'nope.dicom'
    with pytest.raises(dio.DicomReadError, match='nope.dicom: file not found'):
        dio.read_dicom(missing)
    junk = tmp_path / 'junk.dicom'
    junk.write_bytes(b'not a dicom at all' * 10)
    with pytest.raises(dio.DicomReadError, match='junk.dicom'):
        dio.read_dicom(junk)


def _write_small(path, **changes):
    from data_converters.synth.vindr import plan_dataset, render_dicom

    im = plan_dataset(1, seed=1, scale=0.03)[0]
    render_dicom(im, str(path), **changes)
    return im


def test_for_processing_and_no_pixels_are_unsupported(tmp_path):
    import pydicom

    path = tmp_path / 'a.dicom'
    _write_small(path)
    ds = pydicom.dcmread(path)
    ds.PresentationIntentType = 'FOR PROCESSING'
    ds.save_as(tmp_path / 'proc.dicom')
    with pytest.raises(dio.UnsupportedDicomError, match='FOR PROCESSING'):
        dio.read_dicom(tmp_path / 'proc.dicom')
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(tmp_path / 'nopix.dicom')
    with pytest.raises(dio.UnsupportedDicomError, match='no pixel data'):
        dio.read_dicom(tmp_path / 'nopix.dicom')


def test_rle_reads_like_native(tmp_path):
    im = _write_small(tmp_path / 'native.dicom')
    _write_small(tmp_path / 'rle.dicom', transfer_syntax='rle')
    a, b = dio.read_dicom(tmp_path / 'native.dicom'), dio.read_dicom(tmp_path / 'rle.dicom')
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert a.pixels.shape == (im.rows, im.cols)


def test_fuzz_truncated_and_bitflipped_only_typed_errors(tmp_path):
    """Hundreds of damaged files: each either reads or raises DicomError, never anything else."""
    src = tmp_path / 'ok.dicom'
    _write_small(src)
    data = src.read_bytes()
    rng = np.random.default_rng(0)
    outcomes = {'ok': 0, 'typed': 0}
    bad = tmp_path / 'bad.dicom'
    for i in range(300):
        buf = bytearray(data)
        if i % 2:
            buf = buf[: int(rng.integers(0, len(buf)))]
        else:
            header = min(len(buf), 2000)  # flips in the header reach the parser; pixel flips only change pixels
            for pos in rng.integers(0, header, int(rng.integers(1, 8))):
                buf[pos] ^= 1 << int(rng.integers(0, 8))
        bad.write_bytes(bytes(buf))
        try:
            img = dio.read_dicom(bad)
            dio.to_display(img)
            outcomes['ok'] += 1
        except dio.DicomError as exc:
            assert str(bad) in str(exc)
            outcomes['typed'] += 1
    assert outcomes['typed'] > 100  # the damage really reaches the reader
