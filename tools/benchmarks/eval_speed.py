"""Evaluation speed: mammo-det's evaluation (COCO AP + FROC from one matching, then also BI-RADS) against
pycocotools COCOeval alone (evaluate + accumulate + per-class AP extraction), on the same random detections; then
the study bootstrap and the paired comparison against one plain evaluation of the same data.

    python tools/benchmarks/eval_speed.py [--images 2000] [--categories 10] [--dets-per-image 100] [--bootstrap 1000]

Prints the times and their ratios (targets: >= 3x faster than pycocotools in one process; `mammo-det evaluate`
as a whole process, writing its JSON, CSVs and plots, >= 2.5x faster than a pycocotools script that loads the
same files and prints its summary; 1,000 resamples <= 10x one evaluation; a paired comparison of two models <= 2x
one model's bootstrap), the largest difference between per-category APs and pycocotools (target 0, within 1e-6),
and between the bootstrap's all-ones resample and the point values (target 0, within 1e-12).
"""
import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, REPO)

from mammo_det.evaluation import evaluate  # noqa: E402


def make_case(n_images, n_cats, dets_per_image, seed=0):
    rng = np.random.default_rng(seed)
    # four views a study, as VinDr-Mammo: the bootstrap draws studies
    images = [dict(id=i, width=1600, height=2048, file_name=f'{i}.png', study_id=f's{(i - 1) // 4}',
                   laterality='LR'[(i - 1) // 2 % 2], breast_birads=int(rng.choice([1, 2, 3, 4, 5])))
              for i in range(1, n_images + 1)]
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


def best_of_two(fn):
    """The faster of two runs: the ratio of two timings is then less at the mercy of load."""
    times = []
    for _ in range(2):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


PYCOCOTOOLS_SCRIPT = """import sys
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
gt = COCO(sys.argv[1])
ev = COCOeval(gt, gt.loadRes(sys.argv[2]), 'bbox')
ev.evaluate()
ev.accumulate()
ev.summarize()
"""


def in_process(gt, dets):
    """One evaluation against pycocotools' evaluate + accumulate in this process, and their per-category APs."""
    mutable = json.loads(json.dumps(dets))  # loadRes adds a polygon, area and id to every detection it is given
    t = time.perf_counter()
    ref = pycocotools_per_class(gt, mutable)
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
    return t_full


def whole_process(gt, dets):
    """`mammo-det evaluate GT PRED --out DIR` against `python pycocotools_script.py GT PRED`, each a fresh process
    reading the same files (interpreter start, imports and JSON included)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = {k: os.path.join(tmp, f'{k}.json') for k in ('gt', 'pred')}
        for k, v in (('gt', gt), ('pred', dets)):
            with open(paths[k], 'w') as fh:
                json.dump(v, fh)
        script = os.path.join(tmp, 'pycocotools_eval.py')
        with open(script, 'w') as fh:
            fh.write(PYCOCOTOOLS_SCRIPT)
        env = dict(os.environ, PYTHONPATH=REPO)
        run = lambda cmd: subprocess.run(cmd, check=True, capture_output=True, env=env)  # noqa: E731
        t_ref = best_of_two(lambda: run([sys.executable, script, paths['gt'], paths['pred']]))
        t_ours = best_of_two(lambda: run([sys.executable, '-m', 'mammo_det', 'evaluate', paths['gt'], paths['pred'],
                                          '--out', os.path.join(tmp, 'eval')]))
    print(f'pycocotools script, whole process:                      {t_ref:6.2f} s')
    print(f'mammo-det evaluate (JSON, CSVs, plots), whole process:  {t_ours:6.2f} s   speed-up {t_ref / t_ours:.2f}x '
          '(target >= 2.5x)')


def bootstrap_cost(gt, dets, t_full, n):
    """Resamples and the paired comparison against one evaluation; the all-ones resample against the point."""
    from mammo_det.evaluation import check_protocol, compare, point_metrics

    t_boot = best_of_two(lambda: evaluate(gt, dets, bootstrap=n))
    rng = np.random.default_rng(1)
    other = [dict(d, score=float(np.clip(d['score'] + rng.normal(0, 0.1), 0, 1))) for d in dets]
    t_pair = best_of_two(lambda: compare(gt, [dets, other], ['a', 'b'], bootstrap=n))
    print(f'evaluate + {n} study resamples:               {t_boot:6.2f} s   {t_boot / t_full:.2f}x one '
          'evaluation (target <= 10x)')
    print(f'paired comparison of two models, {n} resamples:  {t_pair:6.2f} s   {t_pair / t_boot:.2f}x one '
          "model's bootstrap (target <= 2x)")
    point, data = point_metrics(gt, dets, check_protocol(), for_bootstrap=True)
    ones = data.samples(np.ones((1, len(data.units))))
    worst = max(abs(ones[('per_category', c, k)][0] - v[k]) for c, v in point['per_category'].items()
                for k in ('AP', 'AP50', 'AP75') if v[k] is not None)
    worst = max([worst] + [abs(ones[('per_category', c, 'recall_at_fppi', f)][0] - r)
                           for c, v in point['per_category'].items() for f, r in v['recall_at_fppi'].items()])
    print(f'largest difference of the all-ones resample to the point values: {worst:.2e} (target <= 1e-12)')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--images', type=int, default=2000)
    ap.add_argument('--categories', type=int, default=10)
    ap.add_argument('--dets-per-image', type=int, default=100)
    ap.add_argument('--bootstrap', type=int, default=1000)
    args = ap.parse_args()
    gt, dets = make_case(args.images, args.categories, args.dets_per_image)
    print(f'{args.images} images, {args.categories} categories, {len(gt["annotations"])} boxes, {len(dets)} detections')
    t_full = in_process(gt, dets)
    whole_process(gt, dets)
    bootstrap_cost(gt, dets, t_full, args.bootstrap)


if __name__ == '__main__':
    main()
