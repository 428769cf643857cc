"""Does reading the two views together help? A detector trained on single views (the demo's), its predictions fused
across CC and MLO (`mammo-det fuse`), compared with the unfused ones on a test split the fuser was not fit on.

    python tools/benchmarks/two_view.py [--out work_dirs/two_view] [--studies 120] [--distractors 0.5]

Steps: a synthetic release whose lesions are drawn in both views of their breast at a consistent nipple depth,
with distractors (lesion-like blobs in one view only, not annotated); conversion and training as `mammo-det demo`
does; predictions on the validation and test splits; the fuser fit on validation; `compare` of unfused vs fused on
test, per view and per lesion, at 0.25 and 0.5 FPPI with study-bootstrap intervals and p. Then the time `fuse`
takes on 10,000 images of predictions (the test split's, repeated as new studies). Prints one JSON summary and
writes it to OUT/two_view.json. Reruns reuse the trained model.
"""
import argparse
import json
import os
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, REPO)

POINTS = ('0.25', '0.5')


def _predict(out: str, split: str) -> list:
    """The demo model's predictions on ``split`` of the demo's conversion (cached in OUT/preds_<split>.json)."""
    from mammo_det.apis.runner import build_test_runner

    path = os.path.join(out, f'preds_{split}.json')
    if not os.path.exists(path):
        coco = os.path.join(out, 'coco')
        ann = f'annotations/instances_{split}.json'
        runner = build_test_runner(os.path.join(out, 'config.py'), os.path.join(out, 'model.pth'),
                                   work_dir=os.path.join(out, 'work'), out=path,
                                   report_dir=os.path.join(out, f'eval_{split}'), data_root=coco,
                                   cfg_options={'test_dataloader.dataset.ann_file': ann,
                                                'test_evaluator.ann_file': os.path.join(coco, ann)})
        runner.test()
    return json.load(open(path))


def _rows(res: dict, names: list) -> list:
    """Per category and level (per view, per lesion): recall at each point, unfused and fused, and the paired
    difference with its interval and p."""
    ref, fused = (res['models'][n] for n in names)
    diff = res['differences'][names[1]]
    rows = []
    for level, block in (('view', 'per_category'), ('lesion', 'lesion_level')):
        for cat, d in diff[block].items():
            for f in POINTS:
                e = d['recall_at_fppi'][f]
                rows.append(dict(category=cat, level=level, fppi=float(f),
                                 unfused=ref[block][cat]['recall_at_fppi'][f],
                                 fused=fused[block][cat]['recall_at_fppi'][f],
                                 delta=e['delta'], ci=e.get('ci'), p=e.get('p')))
    return rows


def _fuse_speed(gt: dict, dets: list, fuser: dict, images: int) -> dict:
    """Seconds ``fuse_predictions`` takes on ``images`` images: the test split repeated as new studies."""
    from mammo_det.fusion import fuse_predictions

    reps = -(-images // len(gt['images']))
    big_images, big_dets = [], []
    for r in range(reps):
        offset = r * (max(im['id'] for im in gt['images']) + 1)
        big_images += [dict(im, id=im['id'] + offset, study_id=f"{im['study_id']}-{r}") for im in gt['images']]
        big_dets += [dict(d, image_id=d['image_id'] + offset) for d in dets]
    big_images = big_images[:images]
    kept = {im['id'] for im in big_images}
    big_dets = [d for d in big_dets if d['image_id'] in kept]
    t = time.perf_counter()
    fused, stats = fuse_predictions(dict(gt, images=big_images, annotations=[]), big_dets, fuser)
    return dict(images=len(big_images), detections=len(big_dets), seconds=time.perf_counter() - t,
                rescored=stats['rescored'])


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default='work_dirs/two_view')
    ap.add_argument('--studies', type=int, default=120)
    ap.add_argument('--distractors', type=float, default=0.5, help='mean distractors per image (Poisson)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--bootstrap', type=int, default=1000)
    ap.add_argument('--speed-images', type=int, default=10000)
    args = ap.parse_args()
    from mammo_det.apis.demo import run_demo
    from mammo_det.evaluation import compare, validate_detections
    from mammo_det.fusion import fit_fuser, fuse_predictions

    out = os.path.abspath(args.out)
    run_demo(out, studies=args.studies, seed=args.seed, distractors=args.distractors)
    gts = {s: json.load(open(os.path.join(out, 'coco', 'annotations', f'instances_{s}.json'))) for s in ('val', 'test')}
    dets = {s: validate_detections(_predict(out, s), gts[s]) for s in gts}
    fuser = fit_fuser(gts['val'], dets['val'])
    fused, stats = fuse_predictions(gts['test'], dets['test'], fuser)
    names = ['single view', 'fused']
    res = compare(gts['test'], [dets['test'], fused], names, bootstrap=args.bootstrap, seed=args.seed)
    summary = dict(command=' '.join(sys.argv), fuser=fuser, test=dict(images=len(gts['test']['images']), **{
        k: v for k, v in stats.items() if k != 'seconds'}), rows=_rows(res, names),
        speed=_fuse_speed(gts['test'], dets['test'], fuser, args.speed_images))
    with open(os.path.join(out, 'two_view.json'), 'w') as fh:
        json.dump(summary, fh, indent=1)
    print('\ncategory                  level   FPPI  unfused  fused   delta [95% CI]           p')
    for r in summary['rows']:
        ci = f"[{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}]" if r['ci'] else '-'
        print(f"{r['category']:<25} {r['level']:<7} {r['fppi']:<5} {r['unfused']:.3f}    {r['fused']:.3f}   "
              f"{r['delta']:+.3f} {ci:<20} {r['p']}")
    s = summary['speed']
    print(f"\nfuse on {s['images']} images ({s['detections']} detections): {s['seconds']:.2f} s")
    return summary


if __name__ == '__main__':
    main()
