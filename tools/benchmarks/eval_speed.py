"""Evaluation speed: mammo-det's evaluation (COCO AP via faster-coco-eval + FROC, then also BI-RADS) against
pycocotools COCOeval alone (evaluate + accumulate + per-class AP extraction), on the same random detections.

    python tools/benchmarks/eval_speed.py [--images 2000] [--categories 10] [--dets-per-image 100]

Prints both times, their ratio (target >= 3x) and the largest difference between per-category APs (target 0,
within 1e-6).
"""
import argparse
import contextlib
import io
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))

from mammo_det.evaluation import evaluate  # noqa: E402


def make_case(n_images, n_cats, dets_per_image, seed=0):
    rng = np.random.default_rng(seed)
    images = [dict(id=i, width=1600, height=2048, file_name=f'{i}.png') for i in range(1, n_images + 1)]
    anns, dets = [], []
    for i in range(1, n_images + 1):
        for _ in range(int(rng.poisson(0.3))):  # most mammograms have no finding
            w, h = rng.uniform(40, 400, 2)
            x, y = rng.uniform(0, 1600 - w), rng.uniform(0, 2048 - h)
            anns.append(dict(id=len(anns) + 1, image_id=i, category_id=int(rng.integers(1, n_cats + 1)),
                             bbox=[x, y, w, h], area=w * h, iscrowd=0, birads=int(rng.integers(3, 6))))
        own = [a for a in anns if a['image_id'] == i]
        for k in range(dets_per_image):
            if own and k < 2 * len(own):
                a = own[k % len(own)]
                b = np.array(a['bbox']) + rng.normal(0, 15, 4)
                cat = a['category_id']
            else:
                w, h = rng.uniform(20, 400, 2)
                b = np.array([rng.uniform(0, 1500), rng.uniform(0, 1900), w, h])
                cat = int(rng.integers(1, n_cats + 1))
            b[2:] = np.maximum(b[2:], 2)
            p = rng.dirichlet([1, 1, 1])
            dets.append(dict(image_id=i, category_id=cat, bbox=b.round(2).tolist(), score=float(rng.random()),
                             birads_scores=p.tolist()))
    gt = dict(images=images, annotations=anns, categories=[dict(id=c, name=f'c{c}') for c in range(1, n_cats + 1)])
    return gt, dets


def pycocotools_per_class(gt, dets):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets), 'bbox')
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval['precision']
    out = {}
    for k, cid in enumerate(ev.params.catIds):
        p = prec[:, :, k, 0, 2]  # area "all", maxDets 100
        out[cid] = float(p[p > -1].mean()) if (p > -1).any() else None
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--images', type=int, default=2000)
    ap.add_argument('--categories', type=int, default=10)
    ap.add_argument('--dets-per-image', type=int, default=100)
    args = ap.parse_args()
    gt, dets = make_case(args.images, args.categories, args.dets_per_image)
    print(f'{args.images} images, {args.categories} categories, {len(gt["annotations"])} boxes, {len(dets)} detections')
    t = time.perf_counter()
    ref = pycocotools_per_class(gt, dets)
    t_ref = time.perf_counter() - t
    plain = [{k: v for k, v in d.items() if k != 'birads_scores'} for d in dets]
    t = time.perf_counter()
    ours = evaluate(gt, plain)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    evaluate(gt, dets)
    t_full = time.perf_counter() - t
    names = {c['id']: c['name'] for c in gt['categories']}
    diff = max(abs(ours['per_category'][names[c]]['AP'] - v) for c, v in ref.items() if v is not None)
    print(f'pycocotools COCOeval (evaluate+accumulate+per-class):  {t_ref:6.2f} s')
    print(f'mammo-det evaluate, COCO AP + FROC + breast level:      {t_ours:6.2f} s   speed-up {t_ref / t_ours:.2f}x '
          '(target >= 3x)')
    print(f'mammo-det evaluate, also BI-RADS (confusion + 4-5 AP):  {t_full:6.2f} s   speed-up {t_ref / t_full:.2f}x')
    print(f'largest per-category AP difference to pycocotools: {diff:.2e} (target <= 1e-6)')

if __name__ == '__main__':
    main()
