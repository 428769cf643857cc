"""Every encoding the standard allows for the display tags, each compared with pydicom's reference display.

Each case writes a small DICOM; our display (no crop, no resize, 16-bit) must correlate above 0.999 with pydicom's
``apply_modality_lut`` + ``apply_voi_lut`` (+ the MONOCHROME1 inversion) of the same file, tissue bright. Where the
file uses an encoding pydicom's functions reject (SS LUT Data, packed 8-bit entries, a signed first value written as
US), the reference is pydicom's display of the same content in its canonical encoding. pydicom's ``apply_voi`` also
indexes an 8-bit LUT through a uint8 array, so inputs past 255 wrap around (pydicom 3.0.2): the reference of an 8-bit
LUT is the same curve stored in 16 bits.
"""
import numpy as np
import pytest

from mammo_det.io import dicom as dio

ROWS, COLS = 48, 64


def _pixels(signed: bool, mono1: bool) -> np.ndarray:
    """A ramp of tissue values in the left half, air in the right half (12 bits stored)."""
    y, x = np.mgrid[0:ROWS, 0:COLS]
    tissue = 1500 + 40 * y + 20 * x  # 1500 .. ~4600 before clipping
    px = np.where(x < COLS // 2, np.minimum(tissue, 4000), 100 + (x + y) % 7)
    if mono1:
        px = 4095 - px
    px = px.astype(np.int64)
    return (px - 2048).astype(np.int16) if signed else px.astype(np.uint16)


def _sigmoid_lut(n: int, first: int, top: int) -> np.ndarray:
    x = np.arange(n) + first
    return np.rint(top / (1 + np.exp(-4 * (x - (first + n * 0.6)) / (n * 0.5)))).astype(np.int64)


def _lut_item(n: int, first: int, bits: int, data: np.ndarray, vr: str, first_vr: str = 'US', big_endian=False):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.add_new(0x00283002, first_vr, [n % 65536, first, bits])
    if vr == 'US':
        item.add_new(0x00283006, 'US', [int(v) for v in data])
    elif vr == 'SS':  # entries above 32767 read back negative
        item.add_new(0x00283006, 'SS', [int(v) for v in data.astype(np.uint16).astype(np.int16)])
    elif vr == 'OW':
        item.add_new(0x00283006, 'OW', data.astype('>u2' if big_endian else '<u2').tobytes())
    elif vr == 'OW-packed8':  # two 8-bit entries to a 16-bit word
        item.add_new(0x00283006, 'OW', data.astype(np.uint8).tobytes() + b'\0' * (n % 2))
    else:
        raise ValueError(vr)
    return item


# name -> (options, canonical options for pydicom's reference or None, VOI our reader uses)
CASES = {
    'window': (dict(), None, 'window'),
    'window-implicit-vr': (dict(implicit=True), None, 'window'),
    'windows-several-first-used': (dict(windows=3), None, 'window'),
    'window-sigmoid': (dict(function='SIGMOID'), None, 'window'),
    'window-linear-exact': (dict(function='LINEAR_EXACT'), None, 'window'),
    'window-with-voi-lut-uses-window': (dict(voi_lut='OW'), None, 'window'),
    'voi-lut-us': (dict(voi_lut='US', window=False), None, 'lut'),
    'voi-lut-ow': (dict(voi_lut='OW', window=False), None, 'lut'),
    'voi-lut-ss': (dict(voi_lut='SS', window=False), dict(voi_lut='US', window=False), 'lut'),
    'voi-lut-implicit-vr': (dict(voi_lut='US', window=False, implicit=True), None, 'lut'),
    'voi-lut-65536-ow': (dict(voi_lut='OW', window=False, lut_entries=65536), None, 'lut'),
    'voi-lut-65536-implicit-vr': (dict(voi_lut='US', window=False, lut_entries=65536, implicit=True), None, 'lut'),
    'voi-lut-8bit-in-16bit-words': (dict(voi_lut='OW', window=False, lut_bits=8),
                                    dict(voi_lut='OW', window=False), 'lut'),
    'voi-lut-8bit-packed': (dict(voi_lut='OW-packed8', window=False, lut_bits=8),
                            dict(voi_lut='OW', window=False), 'lut'),
    'voi-lut-big-endian': (dict(voi_lut='OW', window=False, big_endian=True), None, 'lut'),
    'signed-pixels-window': (dict(signed=True), None, 'window'),
    'signed-pixels-voi-lut-ss-first': (dict(signed=True, voi_lut='OW', window=False), None, 'lut'),
    'signed-pixels-voi-lut-first-as-us': (dict(signed=True, voi_lut='OW', window=False, first_vr='US'),
                                          dict(signed=True, voi_lut='OW', window=False), 'lut'),
    'modality-lut-us': (dict(modality_lut='US'), None, 'window'),
    'modality-lut-ow': (dict(modality_lut='OW'), None, 'window'),
    'modality-lut-implicit-vr': (dict(modality_lut='US', implicit=True), None, 'window'),
    'modality-lut-then-voi-lut': (dict(modality_lut='OW', voi_lut='OW', window=False), None, 'lut'),
    'rescale-slope-intercept': (dict(slope=2.0, intercept=-1000.0), None, 'window'),
    'monochrome1-window': (dict(mono1=True), None, 'window'),
    'monochrome1-inverse-presentation': (dict(mono1=True, inverse=True), None, 'window'),
    'monochrome1-voi-lut': (dict(mono1=True, voi_lut='OW', window=False), None, 'lut'),
    'padding-value': (dict(mono1=True, pad=True), None, 'window'),
}


def write_case(path, *, signed=False, mono1=False, window=True, windows=1, function=None, voi_lut=None,
               lut_entries=4096, lut_bits=16, first_vr=None, modality_lut=None, slope=None, intercept=None,
               implicit=False, big_endian=False, inverse=False, pad=False):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import (ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                             generate_uid)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.1.2'
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else ExplicitVRBigEndian if big_endian
                              else ExplicitVRLittleEndian)
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = 'MG'
    ds.Rows, ds.Columns, ds.SamplesPerPixel = ROWS, COLS, 1
    ds.PhotometricInterpretation = 'MONOCHROME1' if mono1 else 'MONOCHROME2'
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, int(signed)
    shift = -2048 if signed else 0  # stored = value + shift
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if modality_lut:
        # A Modality LUT that doubles the 12-bit range into 13 bits: windows are then in modality units.
        ds.ModalityLUTSequence = Sequence([_lut_item(4096, shift, 16, np.arange(4096) * 2, modality_lut,
                                                     'SS' if signed else 'US')])
        ds.ModalityLUTType = 'US'
    # modality value of a pixel of value v: scale * v + offset
    scale = 2.0 if modality_lut else slope or 1.0
    offset = 0.0 if modality_lut else intercept if slope is not None else float(shift)
    if window:
        centers = [2500 * scale + offset + 300 * k for k in range(windows)]
        widths = [3000 * scale * (1 - 0.2 * k) for k in range(windows)]
        ds.WindowCenter = centers if windows > 1 else centers[0]
        ds.WindowWidth = widths if windows > 1 else widths[0]
        ds.WindowCenterWidthExplanation = [f'W{k}' for k in range(windows)] if windows > 1 else 'W0'
        if function:
            ds.VOILUTFunction = function
    if voi_lut:
        n, first = lut_entries, int(offset)
        top = 255 if lut_bits == 8 else 65535
        data = _sigmoid_lut(n, first, top) if n < 65536 else np.rint(
            np.clip(np.arange(n) / 4095, 0, 1) * top).astype(np.int64)
        vr_first = first_vr or ('SS' if first < 0 else 'US')
        if vr_first == 'US' and first < 0:
            first += 65536  # a signed first value written as its unsigned 16-bit pattern
        ds.VOILUTSequence = Sequence([_lut_item(n, first, lut_bits, data, voi_lut, vr_first, big_endian)])
    if inverse:
        ds.PresentationLUTShape = 'INVERSE'
    px = _pixels(signed, mono1)
    if pad:
        px[:4, :] = 4095
        ds.PixelPaddingValue = 4095
    dtype = ('>' if big_endian else '<') + ('i2' if signed else 'u2')
    ds.PixelData = px.astype(dtype).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return px


def pydicom_reference(path, use_window: bool) -> np.ndarray:
    """pydicom's own display of the file: modality LUT, then the VOI (window or LUT), then MONOCHROME1 flip."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = pydicom.dcmread(path)
    out = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds, prefer_lut=not use_window).astype(np.float64)
    return -out if ds.PhotometricInterpretation == 'MONOCHROME1' else out


@pytest.mark.parametrize('name', list(CASES))
def test_display_matches_pydicom_reference(tmp_path, name):
    options, canonical, used = CASES[name]
    path = tmp_path / f'{name}.dcm'
    px = write_case(path, **options)
    ref_path = path
    if canonical is not None:
        ref_path = tmp_path / f'{name}-canonical.dcm'
        write_case(ref_path, **canonical)
    img = dio.read_dicom(path)
    np.testing.assert_array_equal(img.pixels, px)
    lut, offset, desc = dio.display_lut(img, bit_depth=16)  # the default ('auto') choice
    assert desc.startswith('window' if used == 'window' else 'VOI LUT'), desc
    ours = dio.apply_lut(img.pixels, lut, offset).astype(np.float64)
    ref = pydicom_reference(ref_path, used == 'window')
    keep = np.ones(px.shape, bool)
    if options.get('pad'):
        keep[:4, :] = False
        assert (ours[~keep] == 0).all()  # padding is black background, not the white inversion makes of it
    corr = np.corrcoef(ours[keep], ref[keep])[0, 1]
    assert corr > 0.999, (name, corr)
    tissue, air = ours[:, : COLS // 2][keep[:, : COLS // 2]], ours[:, COLS // 2:][keep[:, COLS // 2:]]
    assert tissue.mean() > air.mean() + 20000  # tissue bright: MONOCHROME1 inverted exactly once


def test_several_windows_first_by_default_then_by_index_and_name(tmp_path):
    path = tmp_path / 'w.dcm'
    write_case(path, windows=3)
    img = dio.read_dicom(path)
    assert [w[2] for w in dio.windows(img)] == ['W0', 'W1', 'W2']
    first = dio.to_display(img, bit_depth=16)
    np.testing.assert_array_equal(first, dio.to_display(img, voi='window', window_index=0, bit_depth=16))
    named = dio.to_display(img, voi='window', window_name='w2', bit_depth=16)
    np.testing.assert_array_equal(named, dio.to_display(img, voi='window', window_index=2, bit_depth=16))
    assert not np.array_equal(first, named)


def test_window_after_resize_is_the_documented_difference(tmp_path):
    """preprocess() windows after the area resize: equal to resize-after-window where the window does not clip."""
    import cv2

    from mammo_det.io import geometry as geo
    from mammo_det.io.preprocess import preprocess

    path = tmp_path / 'w.dcm'
    write_case(path)
    img = dio.read_dicom(path)
    out, t, _ = preprocess(str(path), max_size=32, crop=False, bit_depth=16)
    reference = cv2.resize(dio.to_display(img, bit_depth=16).astype(np.float32), (t.out_width, t.out_height),
                           interpolation=cv2.INTER_AREA)
    stored_small = geo.crop_and_resize(img.pixels, t)
    # The window (C=2500, W=3000) clips below 1000.5 and above 3999.5: compare where the whole area lies inside.
    inside = (stored_small > 1300) & (stored_small < 3700)
    assert inside.sum() > 100
    assert np.abs(out[inside].astype(np.float64) - reference[inside]).max() <= 2 * 65535 / 2999 + 1


def test_broken_voi_lut_does_not_block_the_window(tmp_path):
    import pydicom

    path = tmp_path / 'w.dcm'
    write_case(path, voi_lut='OW')
    ds = pydicom.dcmread(path)
    ds.VOILUTSequence[0]['LUTData'].value = b'\x01\x02\x03'  # odd length: unusable
    ds.save_as(path)
    img = dio.read_dicom(path)
    assert dio.display_lut(img)[2].startswith('window')
    with pytest.raises(dio.DicomTagError, match=r'w\.dcm: VOILUTSequence\[0\]\.LUTData: ') as info:
        dio.display_lut(img, voi='lut')
    assert info.value.tag == 'VOILUTSequence[0].LUTData'


@pytest.mark.parametrize('change,tag', [
    (lambda ds: setattr(ds.VOILUTSequence[0], 'LUTDescriptor', [4096, 0]), 'VOILUTSequence[0].LUTDescriptor'),
    (lambda ds: ds.VOILUTSequence[0].__setitem__(
        'LUTData', ds.VOILUTSequence[0]['LUTData'].__class__(0x00283006, 'OW', b'\0\0' * 100)),
     'VOILUTSequence[0].LUTData'),
    (lambda ds: setattr(ds.VOILUTSequence[0], 'LUTDescriptor', [4096, 0, 40]), 'VOILUTSequence[0].LUTDescriptor'),
    (lambda ds: delattr(ds.VOILUTSequence[0], 'LUTData'), 'VOILUTSequence[0].LUTData'),
])
def test_unusable_voi_lut_names_the_tag(tmp_path, change, tag):
    import pydicom

    path = tmp_path / 'l.dcm'
    write_case(path, voi_lut='OW', window=False)
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)
    with pytest.raises(dio.DicomTagError) as info:
        dio.display_lut(dio.read_dicom(path))
    assert info.value.tag == tag and str(path) in str(info.value)


@pytest.mark.parametrize('keyword,value,tag', [
    ('WindowWidth', -5.0, 'WindowWidth'),
    ('VOILUTFunction', 'GAMMA', 'VOILUTFunction'),
])
def test_unusable_window_names_the_tag(tmp_path, keyword, value, tag):
    import pydicom

    path = tmp_path / 'w.dcm'
    write_case(path)
    ds = pydicom.dcmread(path)
    setattr(ds, keyword, value)
    ds.save_as(path)
    with pytest.raises(dio.DicomTagError, match=tag):
        dio.display_lut(dio.read_dicom(path))


def test_fuzz_display_tags_only_typed_errors(tmp_path):
    """Display tags with wrong VRs, lengths and values: each file displays or raises a DicomError naming it."""
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset

    import pydicom

    base = tmp_path / 'base.dcm'
    write_case(base, voi_lut='OW', windows=2, modality_lut='US', pad=True)
    rng = np.random.default_rng(0)
    targets = [(None, 0x00281050), (None, 0x00281051), (None, 0x00281056), (None, 0x00280120),
               (None, 0x00281052), (None, 0x00281053), ('VOILUTSequence', 0x00283002),
               ('VOILUTSequence', 0x00283006), ('ModalityLUTSequence', 0x00283002),
               ('ModalityLUTSequence', 0x00283006)]
    garbage = [b'', b'\x01', b'\xff' * 5, b'abc\0', b'\x00\x80' * 3, b'-1\\x', b'1e400', b'\x00' * 4096]
    outcomes = {'ok': 0, 'typed': 0}
    for i in range(240):
        ds = pydicom.dcmread(base)
        for _ in range(int(rng.integers(1, 4))):
            seq, tag = targets[int(rng.integers(len(targets)))]
            parent: Dataset = ds[seq].value[0] if seq else ds
            vr = str(rng.choice(['US', 'SS', 'OW', 'OB', 'UN', 'DS', 'LO', 'FD', 'UL']))
            raw = garbage[int(rng.integers(len(garbage)))]
            try:
                if vr in ('OW', 'OB', 'UN'):
                    parent[tag] = DataElement(tag, vr, raw)
                elif rng.random() < 0.5:
                    parent[tag] = DataElement(tag, vr, raw.decode('latin-1'))
                elif tag in parent:
                    del parent[tag]
            except Exception:
                continue  # pydicom itself refuses this value
        path = tmp_path / f'fuzz{i}.dcm'
        try:
            ds.save_as(path)
        except Exception:
            continue  # pydicom itself refuses to write this combination
        for voi in ('auto', 'window', 'lut', 'percentile'):
            try:
                dio.to_display(dio.read_dicom(path), voi=voi)
                outcomes['ok'] += 1
            except dio.DicomError as exc:
                assert str(path) in str(exc)
                outcomes['typed'] += 1
    assert outcomes['typed'] > 100 and outcomes['ok'] > 50, outcomes
