"""What the BI-RADS branch of each detector family learns, and what it costs, on the same data and budget.

    python tools/benchmarks/birads_families.py [--demo work_dirs/demo] [--seeds 0 1] [--out work_dirs/families]

Each config of configs/demo-families (two-stage Faster R-CNN, dense FCOS, DETR-family DINO, a zoo ATSS through
BiradsDetector; FCOS, DINO and ATSS all take their BI-RADS from BiradsDetector's box classifier; all on the demo
model's backbone and neck, so run `make demo` first) is trained with its BI-RADS
branch and without it (``with_birads=False``), once per seed, by `mammo-det benchmark` on the demo's data. Prints
per family: BI-RADS accuracy on matched boxes against always answering the most frequent BI-RADS, the BI-RADS 4-5
AP, mAP with and without the branch (mean and spread over the seeds), and the mean training iteration time with and
without it.
Writes OUT/families.json.
"""
import argparse
import glob
import json
import os
import statistics
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, REPO)

# family: (config in configs/demo-families, the config lines that switch its branch off)
FAMILIES = {
    'Faster R-CNN (two-stage)': ('faster-rcnn_r18-w16_fpn_birads_1xb4-6e_synth-mammo',
                                 'model = dict(roi_head=dict(bbox_head=dict(with_birads=False)))'),
    'FCOS (dense)': ('fcos_r18-w16_fpn_birads_1xb4-6e_synth-mammo', 'model = dict(with_birads=False)'),
    'DINO (DETR)': ('dino_r18-w16_birads_1xb4-6e_synth-mammo', 'model = dict(with_birads=False)'),
    'ATSS via BiradsDetector (any)': ('atss-any_r18-w16_fpn_birads_1xb4-6e_synth-mammo',
                                      'model = dict(with_birads=False)')}


def _variants(out: str) -> list:
    """(family, branch on?, config path) for every family, with a written branch-off variant of each."""
    from mammo_det.apis.configs import find_config

    rows = []
    for family, (name, switch_off) in FAMILIES.items():
        on = find_config(name)
        off = os.path.join(out, 'configs', f'{name}_no-birads.py')
        os.makedirs(os.path.dirname(off), exist_ok=True)
        with open(off, 'w') as fh:
            fh.write(f'_base_ = {on!r}\n{switch_off}\n')
        rows += [(family, True, on), (family, False, off)]
    return rows


def _iteration_time(work_dir: str) -> float:
    """Median seconds per training iteration from the run's scalars (the first logged one left out)."""
    path = sorted(glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json')))[0]
    times = [json.loads(line)['time'] for line in open(path) if '"loss"' in line]
    return statistics.median(times[1:]) if len(times) > 1 else float('nan')


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--demo', default='work_dirs/demo', help='the output of `mammo-det demo`')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    ap.add_argument('--out', default='work_dirs/families')
    args = ap.parse_args()
    from mammo_det.apis.benchmark import benchmark

    demo, out = os.path.abspath(args.demo), os.path.abspath(args.out)
    os.makedirs(os.path.join(out, 'work_dirs'), exist_ok=True)
    link = os.path.join(out, 'work_dirs', 'demo')
    if not os.path.exists(link):
        os.symlink(demo, link)
    os.chdir(out)  # the configs read the demo model from work_dirs/demo/model.pth
    variants = _variants(out)
    runs = []
    for seed in args.seeds:
        wd = os.path.join(out, f'seed{seed}')
        rows = benchmark([v[2] for v in variants], os.path.join(demo, 'coco'), wd, bootstrap=0,
                         cfg_options={'randomness.seed': seed})
        for (family, on, _), r in zip(variants, rows):
            m = json.load(open(os.path.join(wd, r['config'], 'eval', 'metrics.json')))
            runs.append(dict(family=family, branch=on, seed=seed, mAP=m['mAP'], mAP50=m['mAP50'],
                             birads=m['birads'], iter_s=_iteration_time(os.path.join(wd, r['config']))))
    summary = dict(command=' '.join(sys.argv), runs=runs, families={})
    print(f"\n{'family':<31} {'BI-RADS acc':>11} {'majority':>9} {'4-5 AP':>7} {'mAP on':>15} {'mAP off':>15} "
          f"{'s/iter on':>9} {'off':>6}")
    for family in FAMILIES:
        on = [r for r in runs if r['family'] == family and r['branch']]
        off = [r for r in runs if r['family'] == family and not r['branch']]

        def mean(rs, f):
            return statistics.mean(f(r) for r in rs)

        def spread(rs, f):
            v = [f(r) for r in rs]
            return max(v) - min(v)

        s = dict(acc=mean(on, lambda r: r['birads']['accuracy']),
                 majority=mean(on, lambda r: r['birads']['majority_baseline']),
                 suspicious_AP=mean(on, lambda r: r['birads']['suspicious_AP']),
                 mAP_on=mean(on, lambda r: r['mAP']), mAP_on_spread=spread(on, lambda r: r['mAP']),
                 mAP_off=mean(off, lambda r: r['mAP']), mAP_off_spread=spread(off, lambda r: r['mAP']),
                 iter_s_on=mean(on, lambda r: r['iter_s']), iter_s_off=mean(off, lambda r: r['iter_s']))
        summary['families'][family] = s
        print(f"{family:<31} {s['acc']:>11.3f} {s['majority']:>9.3f} {s['suspicious_AP']:>7.3f} "
              f"{s['mAP_on']:>8.3f} ±{s['mAP_on_spread'] / 2:.3f} {s['mAP_off']:>8.3f} ±{s['mAP_off_spread'] / 2:.3f} "
              f"{s['iter_s_on']:>9.3f} {s['iter_s_off']:>6.3f}")
    print(f"(means over seeds {args.seeds}; ± half the range between seeds)")
    with open(os.path.join(out, 'families.json'), 'w') as fh:
        json.dump(summary, fh, indent=1)
    return summary


if __name__ == '__main__':
    main()
