"""Train a detector from a config (mmdet's tools/train.py shape; `mammo-det train` takes the same options).

    python tools/train.py CONFIG [--work-dir DIR] [--data-root DATA] [--auto-scale-lr] [--resume] [--amp|--fp32]
    bash tools/dist_train.sh CONFIG 8 [...]            # torchrun on one node
"""
import argparse


def main(argv=None):
    from mammo_det.apis.runner import add_runner_args, run_from_args

    args = add_runner_args(argparse.ArgumentParser(description='Train a mammo-det detector'), 'train').parse_args(argv)
    run_from_args(args, 'train')


if __name__ == '__main__':
    main()
