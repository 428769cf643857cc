"""Train a detector from a config (mmdet's tools/train.py shape; `mammo-det train` runs the same code).

    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp] [--data-root DATA]
    bash tools/dist_train.sh CONFIG 8 [...]            # torchrun on one node
"""
import argparse
import os


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Train a mammo-det detector')
    p.add_argument('config', help='train config file path')
    p.add_argument('--work-dir', help='where logs and checkpoints go')
    p.add_argument('--resume', action='store_true', help='resume from the latest checkpoint in the work dir')
    p.add_argument('--load-from', help='initialise the weights from this checkpoint (no resume)')
    p.add_argument('--amp', action='store_true', help='automatic mixed precision')
    p.add_argument('--auto-scale-lr', action='store_true', help='scale the lr to the real total batch size')
    p.add_argument('--data-root', help='a folder written by `mammo-det convert` (overrides the config)')
    p.add_argument('--cfg-options', nargs='+', help='override config settings, key=value')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    from mammo_det.apis.runner import build_train_runner, parse_cfg_options

    runner = build_train_runner(args.config, work_dir=args.work_dir, launcher=args.launcher, resume=args.resume,
                                amp=args.amp, auto_scale_lr=args.auto_scale_lr,
                                cfg_options=parse_cfg_options(args.cfg_options), data_root=args.data_root,
                                load_from=args.load_from)
    runner.train()


if __name__ == '__main__':
    main()
