"""Test a checkpoint on a config's test split (mmdet's tools/test.py shape; `mammo-det test` takes the same options).

    python tools/test.py CONFIG CHECKPOINT [--out preds.json] [--report-dir DIR] [--data-root DATA]

`--out` writes COCO-style results with `birads` and `birads_scores` per box (converted image pixels);
`--report-dir` gets the metric's report (metrics.json, per_category.csv, PR/FROC plots).
"""
import argparse


def main(argv=None):
    from mammo_det.apis.runner import add_runner_args, run_from_args

    args = add_runner_args(argparse.ArgumentParser(description='Test a mammo-det detector'), 'test').parse_args(argv)
    return run_from_args(args, 'test')


if __name__ == '__main__':
    main()
