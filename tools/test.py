"""Test a checkpoint on a config's test split (mmdet's tools/test.py shape; `mammo-det test` runs the same code).

    python tools/test.py CONFIG CHECKPOINT [--out preds.json] [--data-root DATA]

`--out` writes COCO-style results with `birads` and `birads_scores` per box (converted image pixels), and the
metric's report (metrics.json, per_category.csv, PR/FROC plots) into `<out stem>_eval/`.
"""
import argparse
import os


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Test a mammo-det detector')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--work-dir')
    p.add_argument('--out', help='COCO results JSON to write')
    p.add_argument('--show-dir', help='draw predictions into this folder (under the work dir)')
    p.add_argument('--data-root', help='a folder written by `mammo-det convert` (overrides the config)')
    p.add_argument('--cfg-options', nargs='+', help='override config settings, key=value')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    from mammo_det.apis.runner import build_test_runner, parse_cfg_options

    runner = build_test_runner(args.config, args.checkpoint, work_dir=args.work_dir, launcher=args.launcher,
                               out=args.out, cfg_options=parse_cfg_options(args.cfg_options),
                               data_root=args.data_root, show_dir=args.show_dir)
    return runner.test()


if __name__ == '__main__':
    main()
