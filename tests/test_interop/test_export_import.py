"""Exports of the converted data for other frameworks, and their predictions imported back: the files each
framework documents, written here as it writes them, give exactly the COCO results of the same boxes."""
import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from mammo_det.interop.export import ExportError, export
from mammo_det.interop.imports import PredictionImportError, import_predictions

SPLITS = ('train', 'val', 'test')


def _coco(data, split):
    return json.load(open(os.path.join(data, 'annotations', f'instances_{split}.json')))


def test_yolo_export_gives_back_every_box_negative_and_name(converted, tmp_path):
    data, _ = converted
    out = tmp_path / 'yolo'
    manifest = export(data, 'yolo', str(out))
    spec = yaml.safe_load((out / 'data.yaml').read_text())
    assert spec['path'] == str(out) and os.path.isabs(spec['path']) and 'download' not in spec
    cats = sorted(_coco(data, 'train')['categories'], key=lambda c: c['id'])
    assert spec['names'] == {k: c['name'] for k, c in enumerate(cats)}
    for split in SPLITS:
        coco = _coco(data, split)
        assert spec[split] == f'images/{split}'
        for im in coco['images']:
            png = out / 'images' / split / f"{im['id']}.png"
            assert os.path.realpath(png) == os.path.realpath(os.path.join(data, 'images', im['file_name']))
            assert os.path.islink(png)  # linked, not copied
            lines = (out / 'labels' / split / f"{im['id']}.txt").read_text().split('\n')[:-1]
            want = sorted((cats.index(next(c for c in cats if c['id'] == a['category_id'])), *a['bbox'])
                          for a in coco['annotations'] if a['image_id'] == im['id'])
            got = []
            for line in lines:
                k, cx, cy, w, h = (float(v) for v in line.split())
                W, H = im['width'], im['height']
                got.append((int(k), (cx - w / 2) * W, (cy - h / 2) * H, w * W, h * H))
            assert len(got) == len(want), im  # an empty file for a negative
            for g, w in zip(sorted(got), want):
                assert g[0] == w[0] and np.allclose(g[1:], w[1:], atol=0.01), (g, w)
    negatives = sum(1 for split in SPLITS for f in (out / 'labels' / split).iterdir() if f.read_text() == '')
    report = json.load(open(os.path.join(data, 'report.json')))
    assert negatives == sum(s['negative_images'] for s in report['splits'].values())
    assert manifest['fingerprint'] == json.load(open(out / 'export.json'))['fingerprint']
    with pytest.raises(ExportError, match='exists'):
        export(data, 'yolo', str(out))


def test_rfdetr_export_lays_out_the_coco_files_with_their_images(converted, tmp_path):
    data, _ = converted
    out = tmp_path / 'rf'
    subprocess.run([sys.executable, '-m', 'mammo_det', 'export', data, str(out), '--format', 'rfdetr'], check=True,
                   capture_output=True)  # as the README shows it
    for split, folder in (('train', 'train'), ('val', 'valid'), ('test', 'test')):
        coco, theirs = _coco(data, split), json.load(open(out / folder / '_annotations.coco.json'))
        assert theirs['annotations'] == coco['annotations']
        assert [c['id'] for c in theirs['categories']] == list(range(1, len(coco['categories']) + 1))
        assert all(c['supercategory'] for c in theirs['categories'])
        for im, mine in zip(theirs['images'], coco['images']):
            assert im['file_name'] == f"{mine['id']}.png" and (out / folder / im['file_name']).exists()


def _predictions(data, rng):
    """The test split's ground-truth boxes as predictions with random scores, plus one running past the right
    edge of the first image."""
    coco = _coco(data, 'test')
    dets = [dict(image_id=a['image_id'], category_id=a['category_id'], bbox=list(a['bbox']),
                 score=round(float(rng.random()), 4)) for a in coco['annotations']]
    im = coco['images'][0]
    dets.append(dict(image_id=im['id'], category_id=coco['categories'][0]['id'],
                     bbox=[im['width'] - 10.0, 5.0, 30.0, 12.0], score=0.5))
    return coco, dets


def _expected(coco, dets):
    """What the import must give: the boxes clipped to the image, rounded as COCO results."""
    ims = {im['id']: im for im in coco['images']}
    out = []
    for d in dets:
        x, y, w, h = d['bbox']
        im = ims[d['image_id']]
        x1, y1 = min(x + w, im['width']), min(y + h, im['height'])
        out.append(dict(d, bbox=[round(x, 3), round(y, 3), round(x1 - x, 3), round(y1 - y, 3)]))
    return out


def _same(got, want, atol=0.01):
    assert len(got) == len(want)
    key = lambda d: (d['image_id'], d['category_id'], round(d['bbox'][0]), round(d['bbox'][1]), d['score'])
    for g, w in zip(sorted(got, key=key), sorted(want, key=key)):
        assert (g['image_id'], g['category_id']) == (w['image_id'], w['category_id'])
        assert g['score'] == pytest.approx(w['score'], abs=1e-6)
        assert np.allclose(g['bbox'], w['bbox'], atol=atol), (g, w)


def test_each_format_as_its_tool_writes_it_imports_to_the_same_results(converted, tmp_path):
    data, _ = converted
    coco, dets = _predictions(data, np.random.default_rng(0))
    want = _expected(coco, dets)
    gt = os.path.join(data, 'annotations', 'instances_test.json')
    ids = [c['id'] for c in sorted(coco['categories'], key=lambda c: c['id'])]
    names = {c['id']: c['name'] for c in coco['categories']}
    ims = {im['id']: im for im in coco['images']}
    # ultralytics predict --save_txt --save_conf: labels/<stem>.txt, '%g' values, 0-based class, normalised
    labels = tmp_path / 'predict' / 'labels'
    labels.mkdir(parents=True)
    for d in dets:
        im = ims[d['image_id']]
        x, y, w, h = d['bbox']
        row = (ids.index(d['category_id']), (x + w / 2) / im['width'], (y + h / 2) / im['height'], w / im['width'],
               h / im['height'], d['score'])
        with open(labels / f"{im['id']}.txt", 'a') as fh:
            fh.write(('%g ' * len(row)).rstrip() % row + '\n')
    got, stats = import_predictions(gt, str(tmp_path / 'predict'), 'yolo-txt')
    _same(got, want, atol=0.02)  # '%g' keeps 6 digits of the normalised values
    assert stats.clipped == 1 and stats.detections == len(dets)
    # ultralytics val --save_json: category_id = cls + 1, image_id int(stem), bbox xywh pixels
    uj = [dict(image_id=d['image_id'], file_name=f"{d['image_id']}.png", category_id=ids.index(d['category_id']) + 1,
               bbox=[round(v, 3) for v in d['bbox']], score=round(d['score'], 5)) for d in dets]
    (tmp_path / 'predictions.json').write_text(json.dumps(uj))
    _same(import_predictions(gt, str(tmp_path / 'predictions.json'), 'yolo-json')[0], want)
    # COCO results: the dataset's ids (detectron2, torchvision); contiguous from 0 (transformers' labels)
    (tmp_path / 'coco.json').write_text(json.dumps(dets))
    _same(import_predictions(gt, str(tmp_path / 'coco.json'), 'coco')[0], want)
    zero = [dict(d, category_id=ids.index(d['category_id'])) for d in dets]
    (tmp_path / 'zero.json').write_text(json.dumps(zero))
    _same(import_predictions(gt, str(tmp_path / 'zero.json'), 'coco', category_ids='contiguous0')[0], want)
    # plain CSV: file names and class names, or ids and indices, with BI-RADS probabilities
    with open(tmp_path / 'boxes.csv', 'w', newline='') as fh:
        w = csv.writer(fh)
        w.writerow(['image', 'x1', 'y1', 'x2', 'y2', 'score', 'class', 'birads_3', 'birads_4', 'birads_5'])
        for k, d in enumerate(dets):
            x, y, bw, bh = d['bbox']
            image = ims[d['image_id']]['file_name'] if k % 2 else d['image_id']
            cls = names[d['category_id']] if k % 2 else ids.index(d['category_id'])
            w.writerow([image, x, y, x + bw, y + bh, d['score'], cls, 0.2, 0.7, 0.1])
    got = import_predictions(gt, str(tmp_path / 'boxes.csv'), 'csv')[0]
    _same(got, want)
    assert all(d['birads'] == 4 and d['birads_scores'] == [0.2, 0.7, 0.1] for d in got)


def test_boxes_on_the_dicom_grid_map_through_each_image_transform(converted, tmp_path):
    from mammo_det.io.geometry import ImageTransform, to_original

    data, _ = converted
    coco, dets = _predictions(data, np.random.default_rng(1))
    dets = dets[:-1]
    ims = {im['id']: im for im in coco['images']}
    orig = []
    for d in dets:
        x, y, w, h = d['bbox']
        t = ImageTransform.from_dict(ims[d['image_id']]['transform'])
        x0, y0, x1, y1 = to_original(np.array([[x, y, x + w, y + h]]), t)[0]
        orig.append(dict(d, bbox=[x0, y0, x1 - x0, y1 - y0]))
    (tmp_path / 'dicom.json').write_text(json.dumps(orig))
    gt = os.path.join(data, 'annotations', 'instances_test.json')
    _same(import_predictions(gt, str(tmp_path / 'dicom.json'), 'coco', boxes='dicom')[0], _expected(coco, dets))
    assert any(ims[d['image_id']]['transform']['crop'][0] > 0 for d in dets)  # the crop moved some boxes


@pytest.mark.parametrize('case,message', [
    ('image', r"entry 0: image 'nope' is not in the ground truth"),
    ('class', r'entry 0: category id 99 is not one of'),
    ('normalised', r'every box coordinate is within 0..1: the boxes look normalised'),
    ('nan', r'entry 0: score nan'),
    ('negative', r'entry 0: score -0.5'),
    ('pixels', r'line 1: coordinates .* look like pixels'),
    ('noconf', r'line 1: 5 values and no confidence'),
    ('yolo-class', r'line 1: class 10 is out of range 0..9'),
    ('csv-class', r"line 2: class 'Tumour' is neither one of"),
    ('export', r'made on the export .* whose data is not'),
])
def test_bad_predictions_name_the_file_and_line_and_write_nothing(converted, tmp_path, case, message):
    data, _ = converted
    gt = os.path.join(data, 'annotations', 'instances_test.json')
    im = _coco(data, 'test')['images'][0]
    det = dict(image_id=im['id'], category_id=1, bbox=[10, 10, 20, 20], score=0.5)
    fmt, path = 'coco', tmp_path / 'p.json'
    if case in ('image', 'class', 'nan', 'negative', 'normalised'):
        det.update(dict(image=dict(image_id='nope'), **{'class': dict(category_id=99)}, nan=dict(score=float('nan')),
                        negative=dict(score=-0.5), normalised=dict(bbox=[0.1, 0.1, 0.2, 0.2]))[case])
        path.write_text(json.dumps([det]))  # json writes a NaN score as NaN, which json reads back
    elif case in ('pixels', 'noconf', 'yolo-class'):
        fmt, path = 'yolo-txt', tmp_path / 'labels'
        path.mkdir()
        line = dict(pixels='0 40 40 20 20 0.9', noconf='0 0.5 0.5 0.1 0.1', **{'yolo-class': '10 0.5 0.5 0.1 0.1 0.9'})
        (path / f"{im['id']}.txt").write_text(line[case] + '\n')
    elif case == 'csv-class':
        fmt, path = 'csv', tmp_path / 'p.csv'
        path.write_text(f"image,x1,y1,x2,y2,score,class\n{im['id']},1,1,20,20,0.5,Tumour\n")
    else:  # YOLO txt from an export of other data (its annotation files differ)
        other = tmp_path / 'other'
        (other / 'annotations').mkdir(parents=True)
        for split in SPLITS:
            c = _coco(data, split)
            (other / 'annotations' / f'instances_{split}.json').write_text(json.dumps(dict(c, info={'x': split})))
        os.symlink(os.path.join(data, 'images'), other / 'images')
        export(str(other), 'yolo', str(tmp_path / 'exp'))
        fmt, path = 'yolo-txt', tmp_path / 'exp' / 'runs' / 'labels'
        path.mkdir(parents=True)
        (path / f"{im['id']}.txt").write_text('0 0.5 0.5 0.1 0.1 0.9\n')
    with pytest.raises(PredictionImportError, match=message):
        import_predictions(gt, str(path), fmt)
    out = tmp_path / 'out.json'
    proc = subprocess.run([sys.executable, '-m', 'mammo_det', 'import-preds', gt, str(path), '--pred-format', fmt,
                           '--out', str(out)], capture_output=True, text=True)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr and not out.exists(), proc.stderr


def test_the_cli_imports_and_evaluate_scores_the_result(converted, tmp_path):
    data, _ = converted
    coco, dets = _predictions(data, np.random.default_rng(2))
    (tmp_path / 'p.json').write_text(json.dumps(dets))
    gt = os.path.join(data, 'annotations', 'instances_test.json')
    subprocess.run([sys.executable, '-m', 'mammo_det', 'import-preds', gt, str(tmp_path / 'p.json'), '--pred-format',
                    'coco', '--out', str(tmp_path / 'r.json')], check=True, capture_output=True)
    subprocess.run([sys.executable, '-m', 'mammo_det', 'evaluate', gt, str(tmp_path / 'r.json'), '--out',
                    str(tmp_path / 'e')], check=True, capture_output=True)
    from mammo_det.evaluation import evaluate

    metrics = json.load(open(tmp_path / 'e' / 'metrics.json'))
    direct = evaluate(coco, _expected(coco, dets))  # the same boxes scored without the import
    assert math.isclose(metrics['mAP'], direct['mAP'], abs_tol=1e-9) and metrics['mAP50'] > 0.9


def test_a_leaderboard_of_imported_predictions_alone(converted, tmp_path):
    """benchmark with --predictions only (no model to train): rows marked imported, with intervals and the paired
    difference to the first; a bad name or a missing file is refused before anything is written."""
    from mammo_det.apis.benchmark import BenchmarkError, benchmark

    data, _ = converted
    coco, dets = _predictions(data, np.random.default_rng(3))
    (tmp_path / 'all.json').write_text(json.dumps(dets))
    (tmp_path / 'half.json').write_text(json.dumps(dets[::2]))
    rows = benchmark([], data, str(tmp_path / 'b'), predictions={'all': str(tmp_path / 'all.json'),
                                                                 'half': str(tmp_path / 'half.json')}, bootstrap=100)
    assert [(r['config'], r['source']) for r in rows] == [('all', 'imported'), ('half', 'imported')]
    assert rows[1]['mAP'] < rows[0]['mAP'] and rows[1]['dmAP'] == pytest.approx(rows[1]['mAP'] - rows[0]['mAP'])
    assert rows[0]['mAP_lo'] <= rows[0]['mAP'] <= rows[0]['mAP_hi']
    with pytest.raises(BenchmarkError, match='not found'):
        benchmark([], data, str(tmp_path / 'c'), predictions={'x': str(tmp_path / 'nope.json')})
    with pytest.raises(BenchmarkError, match='not path-safe'):
        benchmark([], data, str(tmp_path / 'c'), predictions={'../x': str(tmp_path / 'all.json')})
    assert not (tmp_path / 'c').exists()
