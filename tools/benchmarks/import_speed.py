"""How fast `mammo-det import-preds` reads other frameworks' predictions: 200,000 boxes on 2,000 images in each
format, against reading the same boxes as COCO results with plain json (the floor: parsing alone).

    python tools/benchmarks/import_speed.py [--images 2000] [--boxes 100]

Prints seconds and boxes per second per format, and the ratio to the json floor, measured side by side.
"""
import argparse
import csv
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))


def _write_inputs(tmp: str, images: int, per_image: int, rng) -> tuple:
    cats = [dict(id=k + 1, name=f'c{k}') for k in range(10)]
    ims = [dict(id=i + 1, file_name=f's/{i + 1:06d}.png', width=1600, height=2000) for i in range(images)]
    gt = dict(images=ims, annotations=[], categories=cats)
    n = images * per_image
    img = np.repeat(np.arange(1, images + 1), per_image)
    xy = rng.random((n, 2)) * [1400, 1800]
    wh = 10 + rng.random((n, 2)) * 150
    cat = rng.integers(1, 11, n)
    score = rng.random(n)
    dets = [dict(image_id=int(i), category_id=int(c), bbox=[round(float(v), 2) for v in (*p, *s)], score=float(sc))
            for i, c, p, s, sc in zip(img, cat, xy, wh, score)]
    paths = dict(gt=os.path.join(tmp, 'gt.json'), coco=os.path.join(tmp, 'coco.json'),
                 csv=os.path.join(tmp, 'boxes.csv'), txt=os.path.join(tmp, 'labels'))
    json.dump(gt, open(paths['gt'], 'w'))
    json.dump(dets, open(paths['coco'], 'w'))
    with open(paths['csv'], 'w', newline='') as fh:
        w = csv.writer(fh)
        w.writerow(['image', 'x1', 'y1', 'x2', 'y2', 'score', 'class'])
        for d in dets:
            x, y, bw, bh = d['bbox']
            w.writerow([d['image_id'], x, y, x + bw, y + bh, d['score'], d['category_id'] - 1])
    os.makedirs(paths['txt'])
    lines = {}
    for d in dets:
        x, y, bw, bh = d['bbox']
        row = (d['category_id'] - 1, (x + bw / 2) / 1600, (y + bh / 2) / 2000, bw / 1600, bh / 2000, d['score'])
        lines.setdefault(d['image_id'], []).append(('%g ' * 6).rstrip() % row)
    for i, ls in lines.items():
        with open(os.path.join(paths['txt'], f'{i}.txt'), 'w') as fh:
            fh.write('\n'.join(ls) + '\n')
    return paths, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--images', type=int, default=2000)
    ap.add_argument('--boxes', type=int, default=100, help='per image')
    args = ap.parse_args()
    from mammo_det.interop.imports import import_predictions

    with tempfile.TemporaryDirectory() as tmp:
        paths, n = _write_inputs(tmp, args.images, args.boxes, np.random.default_rng(0))
        t = time.perf_counter()
        json.load(open(paths['coco']))
        floor = time.perf_counter() - t
        print(f'{n} boxes on {args.images} images; json.load of the COCO results: {floor:.2f} s')
        for fmt, path in (('coco', paths['coco']), ('csv', paths['csv']), ('yolo-txt', paths['txt'])):
            t = time.perf_counter()
            dets, stats = import_predictions(paths['gt'], path, fmt)
            s = time.perf_counter() - t
            assert stats.detections == n, stats
            print(f'{fmt:9s} {s:6.2f} s  {n / s:9.0f} boxes/s  {s / floor:5.1f}x the json floor')


if __name__ == '__main__':
    main()
