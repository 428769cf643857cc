import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from mammo_det.vocab import FINDING_CATEGORIES
from data_converters.synth.vindr import PROFILES
from data_converters.core import ConvertOptions
from data_converters.records import ConversionError, ParseLog
from data_converters.formats import convert
from data_converters.vindr_mammo import read_findings


def _load(out, split):
    with open(os.path.join(out, 'annotations', f'instances_{split}.json')) as fh:
        return json.load(fh)


def test_counts_categories_birads_and_negatives(synth_root, converted):
    root, images = synth_root
    out, report = converted
    cocos = {s: _load(out, s) for s in ('train', 'val', 'test')}
    assert sum(len(c['images']) for c in cocos.values()) == len(images)  # every image kept, negatives too
    expected_anns = sum(len(f.categories) for im in images for f in im.findings)  # one per (box, label)
    assert sum(len(c['annotations']) for c in cocos.values()) == expected_anns
    negatives = sum(1 for im in images if not im.findings)
    assert negatives > 0
    assert sum(s['negative_images'] for s in report['splits'].values()) == negatives
    for c in cocos.values():
        assert [cat['name'] for cat in c['categories']] == list(FINDING_CATEGORIES)
        assert [cat['id'] for cat in c['categories']] == list(range(1, 11))
        assert [im['id'] for im in c['images']] == list(range(1, len(c['images']) + 1))
        for a in c['annotations']:
            assert a['birads'] in (None, 3, 4, 5)
    by_source = {im.image_id: im for im in images}
    all_birads = sorted((str(a['birads'])) for c in cocos.values() for a in c['annotations'])
    exp_birads = sorted(str(f.birads) for im in images for f in im.findings for _ in f.categories)
    assert all_birads == exp_birads
    for c in cocos.values():
        for im in c['images']:
            src = by_source[im['source_id']]
            assert (im['study_id'], im['laterality'], im['view_position']) == (src.study_id, src.laterality, src.view)
            assert im['breast_birads'] == src.breast_birads and im['breast_density'] == src.density
            assert (im['orig_width'], im['orig_height']) == (src.cols, src.rows)
            assert max(im['width'], im['height']) <= 160
            # the DICOM's Manufacturer and model: what `mammo-det evaluate --by vendor` groups by
            profile = PROFILES[src.profile]
            assert (im['manufacturer'], im['manufacturer_model']) == (profile.manufacturer, profile.model)
    assert len({im['manufacturer'] for c in cocos.values() for im in c['images']}) >= 2


def test_splits_by_study_and_official_test(synth_root, converted):
    _, images = synth_root
    out, _ = converted
    study_split = {}
    for split in ('train', 'val', 'test'):
        for im in _load(out, split)['images']:
            assert study_split.setdefault(im['study_id'], split) == split  # a study never straddles splits
    official_test = {im.study_id for im in images if im.split == 'test'}
    assert {s for s, v in study_split.items() if v == 'test'} == official_test
    assert 'val' in study_split.values()


def test_boxes_clipped_and_lesions_bright_inside(synth_root, converted):
    _, images = synth_root
    out, _ = converted
    coco = _load(out, 'train')
    by_id = {im['id']: im for im in coco['images']}
    checked = 0
    for a in coco['annotations']:
        im = by_id[a['image_id']]
        x, y, w, h = a['bbox']
        assert x >= 0 and y >= 0 and x + w <= im['width'] + 1e-6 and y + h <= im['height'] + 1e-6
        if a['category_id'] != 1 or w < 6 or h < 6:
            continue  # masses: a filled bright disk at the box centre
        png = cv2.imread(os.path.join(out, 'images', im['file_name']), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint8 and png.shape == (im['height'], im['width'])
        cx, cy = int(x + w / 2), int(y + h / 2)
        inside = png[cy - 1:cy + 2, cx - 1:cx + 2].mean()
        ring = np.concatenate([png[max(int(y) - 3, 0), int(x):int(x + w)], png[min(int(y + h) + 2, im['height'] - 1),
                                                                             int(x):int(x + w)]])
        assert inside > ring.mean() + 20
        checked += 1
    assert checked > 0


def test_sixteen_bit_and_no_crop(synth_root, tmp_path):
    root, images = synth_root
    out = str(tmp_path / 'c16')
    convert(root, out, ConvertOptions(max_size=0, bit_depth=16, crop=False, workers=2, progress=False,
                                      classes=['mass', 'calcification']))
    coco = _load(out, 'test')
    assert [c['name'] for c in coco['categories']] == ['Mass', 'Suspicious Calcification']
    im = coco['images'][0]
    png = cv2.imread(os.path.join(out, 'images', im['file_name']), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and png.max() > 255
    assert (im['width'], im['height']) == (im['orig_width'], im['orig_height'])
    assert im['transform']['crop'] == [0, 0, im['orig_width'], im['orig_height']]


def _write_csv(path, rows, header):
    with open(path, 'w', newline='') as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _rows(root):
    with open(os.path.join(root, 'finding_annotations.csv'), newline='') as fh:
        r = list(csv.reader(fh))
    return r[0], r[1:]


@pytest.mark.parametrize('field,value,message', [
    ('image_id', '../../etc/passwd', 'not a 32-character lowercase hex id'),
    ('finding_categories', "['Mass', 'Tumour']", "unknown finding category ['Tumour']"),
    ('finding_categories', "__import__('os')", 'is not a list text'),
    ('xmin', 'abc', 'non-numeric coordinate'),
    ('xmax', '-50', 'inverted or empty'),
    ('finding_birads', 'BI-RADS 7', 'finding_birads'),
    ('laterality', 'X', 'laterality'),
])
def test_bad_rows_name_the_line(synth_root, tmp_path, field, value, message):
    root, _ = synth_root
    header, rows = _rows(root)
    k = next(i for i, r in enumerate(rows) if r[header.index('xmin')])  # a box row
    rows[k][header.index(field)] = value
    path = tmp_path / 'finding_annotations.csv'
    _write_csv(path, rows, header)
    with pytest.raises(ConversionError, match=f'line {k + 2}: .*{message}'.replace('[', r'\[').replace(']', r'\]')
                       .replace('(', r'\(').replace(')', r'\)')):
        read_findings(str(path))
    skipped = []
    images = read_findings(str(path), ParseLog('skip', skipped))
    assert len(skipped) == 1 and f'line {k + 2}' in skipped[0]
    assert sum(len(r.boxes) for r in images.values()) == sum(1 for r in rows if r[header.index('xmin')]) - 1


def test_missing_and_corrupt_dicoms_fail_or_skip(synth_root, tmp_path):
    src, images = synth_root
    root = tmp_path / 'copy'
    shutil.copytree(src, root)
    victims = images[0], images[1]
    os.remove(root / 'images' / victims[0].study_id / f'{victims[0].image_id}.dicom')
    corrupt = root / 'images' / victims[1].study_id / f'{victims[1].image_id}.dicom'
    corrupt.write_bytes(corrupt.read_bytes()[:500])
    with pytest.raises(ConversionError, match=f'({victims[0].image_id}.dicom: file not found|'
                                              f'{victims[1].image_id}.dicom: no pixel data)'):
        convert(str(root), str(tmp_path / 'o1'), ConvertOptions(workers=1, progress=False))
    report = convert(str(root), str(tmp_path / 'o2'), ConvertOptions(workers=2, progress=False, on_error='skip'))
    assert len(report['skipped_files']) == 2
    assert any('file not found' in s for s in report['skipped_files'])
    assert sum(s['images'] for s in report['splits'].values()) == len(images) - 2


def _tree(out):
    files = {}
    for dirpath, _, names in os.walk(out):
        for n in names:
            if n in ('report.json', '.journal.jsonl'):
                continue
            p = os.path.join(dirpath, n)
            with open(p, 'rb') as fh:
                files[os.path.relpath(p, out)] = fh.read()
    return files


def test_kill_and_rerun_resumes_with_identical_output(tmp_path):
    from data_converters.synth.vindr import write_dataset

    root = str(tmp_path / 'vindr')
    write_dataset(root, studies=10, seed=5, scale=0.12, progress=False)
    reference = str(tmp_path / 'ref')
    convert(root, reference, ConvertOptions(max_size=256, workers=1, progress=False))
    out = str(tmp_path / 'out')
    cmd = [sys.executable, '-m', 'mammo_det', 'convert', root, out, '--max-size', '256', '--workers', '1']
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = os.path.join(out, '.journal.jsonl')
    deadline = time.time() + 120
    while time.time() < deadline:
        if os.path.exists(journal) and sum(1 for _ in open(journal)) >= 6:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = sum(1 for _ in open(journal)) - 1
    assert 5 <= done_before < 40, 'the kill should land mid-run'
    report = convert(root, out, ConvertOptions(max_size=256, workers=1, progress=False))
    assert report['reused_images'] >= done_before
    assert report['converted_images'] == 40 - report['reused_images']
    assert _tree(out) == _tree(reference)
    report = convert(root, out, ConvertOptions(max_size=256, workers=1, progress=False))
    assert report['reused_images'] == 40
    # A journal of another entry layout (an earlier version's header) is not trusted: every image is converted
    # again, to the same output.
    lines = open(journal).read().splitlines()
    header = json.loads(lines[0])
    header.pop('journal')
    with open(journal, 'w') as fh:
        fh.write('\n'.join([json.dumps(header)] + lines[1:]) + '\n')
    report = convert(root, out, ConvertOptions(max_size=256, workers=1, progress=False))
    assert report['reused_images'] == 0 and report['converted_images'] == 40
    assert _tree(out) == _tree(reference)


def test_release_mixing_every_display_encoding_converts_with_defaults(synth_root, converted):
    """The synthetic release mixes LUT Data as US and OW, implicit VR and a Modality LUT Sequence; with the
    default options every image converts, and re-encoding an image never changes its converted pixels."""
    import pydicom

    from data_converters.synth.vindr import ENCODINGS, render_dicom
    from mammo_det.io.preprocess import preprocess

    root, images = synth_root
    _, report = converted
    seen = set()
    for im in images:
        ds = pydicom.dcmread(os.path.join(root, 'images', im.study_id, f'{im.image_id}.dicom'),
                             stop_before_pixels=True)
        if 'VOILUTSequence' in ds:
            seen.add('implicit' if ds.original_encoding[0] else ds.VOILUTSequence[0]['LUTData'].VR)
        if 'ModalityLUTSequence' in ds:
            seen.add('modality-lut')
    assert seen == {'US', 'OW', 'implicit', 'modality-lut'}, seen
    assert report['skipped_files'] == []
    assert sum(s['images'] for s in report['splits'].values()) == len(images)
    for profile in ('siemens', 'planmed'):
        im = next(i for i in images if i.profile == profile)
        outs = []
        for encoding in ENCODINGS:
            path = os.path.join(str(root), f'enc-{encoding}.dicom')
            render_dicom(im, path, encoding=encoding)
            outs.append(preprocess(path, max_size=160)[0])
            os.remove(path)
        for other in outs[1:]:
            np.testing.assert_array_equal(outs[0], other)


def test_the_core_clips_drops_and_reports_each_box_once(synth_root, tmp_path):
    """Boxes as a release gives them: one past the image edge is clipped, one wholly outside and one too thin to
    survive the resize are dropped; each is reported with its CSV line, and no empty box is written."""
    root, _ = synth_root
    header, rows = _rows(root)
    col = {c: header.index(c) for c in header}
    k = next(i for i, r in enumerate(rows) if r[col['xmin']])  # a box row: its image gets the three cases
    width, height = int(float(rows[k][col['width']])), int(float(rows[k][col['height']]))
    past, outside, thin = list(rows[k]), list(rows[k]), list(rows[k])
    past[col['xmin']], past[col['xmax']] = str(width - 20), str(width + 30)
    outside[col['xmin']], outside[col['xmax']] = str(width + 5), str(width + 40)
    thin[col['xmin']], thin[col['xmax']] = '100', '100.0001'  # 0.0001 px: 0 once resized and rounded
    rows += [past, outside, thin]
    release = tmp_path / 'release'
    shutil.copytree(root, release)
    _write_csv(release / 'finding_annotations.csv', rows, header)
    out = str(tmp_path / 'out')
    report = convert(str(release), out, ConvertOptions(max_size=160, workers=1, progress=False))
    n = len(rows) + 1  # the CSV lines of the three rows added: n - 2, n - 1, n
    assert sum(f'line {n - 2} ' in b and f'clipped to the {width}x{height} image' in b
               for b in report['clipped_boxes']) == 1
    assert sum(f'line {n - 1} ' in b and 'no part inside' in b for b in report['skipped_boxes']) == 1
    assert sum(f'line {n} ' in b and 'once cropped and resized' in b for b in report['skipped_boxes']) == 1
    cocos = [_load(out, s) for s in ('train', 'val', 'test')]
    anns = [a for c in cocos for a in c['annotations']]
    assert all(a['bbox'][2] > 0 and a['bbox'][3] > 0 and a['area'] > 0 for a in anns)
    coco, image = next((c, im) for c in cocos for im in c['images'] if im['source_id'] == rows[k][col['image_id']])
    right = [a for a in coco['annotations'] if a['image_id'] == image['id'] and
             abs(a['bbox'][0] + a['bbox'][2] - image['width']) < 1e-3]
    assert right, 'the clipped box ends at the converted image edge'
