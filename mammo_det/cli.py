"""``mammo-det`` command line. Imports lazily: ``--help``, ``synth``, ``convert``, ``evaluate`` and ``weights`` start
without torch or mmdet; ``train`` and ``test`` share their options with ``tools/train.py`` and ``tools/test.py``."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import List, Optional


def _synth(args) -> int:
    if args.format != 'vindr':
        from data_converters.synth_public import write_release
        from mammo_det.fileio import write_json

        truth = write_release(args.root, args.format, seed=args.seed, scale=args.scale, size=args.studies)
        write_json(os.path.join(args.root, 'synth_truth.json'), truth, indent=1)
        boxes = sum(len(im['boxes']) for im in truth['images'].values())
        print(f"wrote a synthetic {args.format} release to {args.root}: {len(truth['images'])} images kept by the "
              f"converter ({boxes} boxes), {len(truth['expected_skips'])} planted faults it must report "
              '(synth_truth.json)')
        return 0
    from data_converters.synth import write_dataset

    images = write_dataset(args.root, studies=args.studies, seed=args.seed, scale=args.scale or 1.0,
                           workers=args.workers, positive_rate=args.positive_rate)
    boxes = sum(len(im.findings) for im in images)
    print(f'wrote {len(images)} images ({boxes} boxes) of {args.studies} studies to {args.root}')
    return 0


def _convert(args) -> int:
    from data_converters.core import ConversionError, ConvertOptions, parse_shard
    from data_converters.formats import convert

    try:
        opts = ConvertOptions(max_size=args.max_size or None, bit_depth=args.bit_depth, crop=args.crop, voi=args.voi,
                              window_index=args.window_index, val_fraction=args.val_fraction,
                              test_fraction=args.test_fraction, seed=args.seed,
                              classes=args.classes.split(',') if args.classes else None, workers=args.workers,
                              on_error=args.on_error, shard=parse_shard(args.shard) if args.shard else None)
        report = convert(args.root, args.out, opts, args.format)
    except (ConversionError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    _print_report(report, args.out)
    return 0


def _print_report(report: dict, out: str) -> None:
    for split, s in report['splits'].items():
        print(f"{split:5s}: {s['images']} images ({s['positive_images']} with findings) of {s['studies']} studies, "
              f"{s['annotations']} boxes")
    skipped = sum(len(report.get(k, [])) for k in ('skipped_rows', 'skipped_images', 'skipped_files',
                                                      'skipped_boxes'))
    if skipped:
        print(f'skipped {skipped} rows/images/files/boxes: see {os.path.join(out, "report.json")}')
    print(f"done in {report['seconds']} s ({report['reused_images']} images reused from an earlier run)")


def _merge(args) -> int:
    from data_converters.core import ConversionError
    from data_converters.merge import merge

    try:
        report = merge(args.out, args.shards)
    except ConversionError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    _print_report(report, args.out)
    return 0


def _load_eval_inputs(gt_path: str, pred_paths) -> tuple:
    from mammo_det.evaluation import load_json, validate_detections
    from mammo_det.evaluation.metrics import validate_gt

    gt = load_json(gt_path, 'ground truth')
    validate_gt(gt, gt_path)
    return gt, [validate_detections(load_json(p, 'detections'), gt, p) for p in pred_paths]


def _protocol(args) -> dict:
    return dict(froc_iou=args.froc_iou, hit=args.hit, images=args.images, iou_thrs=args.iou_thrs)


def _evaluate(args) -> int:
    from mammo_det.evaluation import EvaluationInputError, evaluate, format_table
    from mammo_det.evaluation.report import write_outputs

    try:
        gt, (dets,) = _load_eval_inputs(args.gt, [args.pred])
        metrics = evaluate(gt, dets, curves=True, by=args.by, bootstrap=args.bootstrap, ci=args.ci, seed=args.seed,
                           **_protocol(args))
    except EvaluationInputError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    print(format_table(metrics))
    paths = write_outputs(metrics, args.out)
    print(f"wrote {', '.join(sorted(os.path.basename(p) for p in paths.values()))} to {args.out}")
    return 0


def _compare(args) -> int:
    from mammo_det.evaluation import EvaluationInputError
    from mammo_det.evaluation.metrics import compare
    from mammo_det.evaluation.report import comparison_markdown, write_comparison

    names = args.names or [os.path.splitext(os.path.basename(p))[0] for p in args.preds]
    if not args.names and len(set(names)) < len(names):  # same file names in different folders
        names = [f'{k}:{n}' for k, n in enumerate(names, 1)]
    try:
        if len(names) != len(args.preds):
            raise EvaluationInputError(f'{len(names)} --names for {len(args.preds)} prediction files')
        gt, preds = _load_eval_inputs(args.gt, args.preds)
        result = compare(gt, preds, names, bootstrap=args.bootstrap, ci=args.ci, seed=args.seed, **_protocol(args))
    except EvaluationInputError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    print(comparison_markdown(result))
    write_comparison(result, args.out)
    print(f'wrote comparison.json, comparison.md, comparison.png to {args.out}')
    return 0


def _floats(text: str) -> list:
    try:
        return [float(v) for v in text.split(',') if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected comma-separated numbers, got {text!r}') from None


def _names(text: str) -> list:
    return [v.strip() for v in text.split(',') if v.strip()]


def add_protocol_args(p: argparse.ArgumentParser, bootstrap: int) -> None:
    """The evaluation protocol and bootstrap options of ``evaluate``, ``compare`` and ``benchmark``."""
    p.add_argument('--froc-iou', type=float, default=0.5, help='IoU of a FROC / recall hit (--hit iou)')
    p.add_argument('--hit', choices=('iou', 'center'), default='iou',
                   help="FROC hit: IoU >= --froc-iou, or the detection's centre inside the box")
    p.add_argument('--images', choices=('all', 'positive'), default='all',
                   help='positive: only images with a ground-truth box (FPPI over them)')
    p.add_argument('--iou-thrs', type=_floats, default=[], metavar='T[,T...]',
                   help='extra AP at single IoU thresholds, e.g. 0.1,0.25 (keys AP10, AP25)')
    p.add_argument('--bootstrap', type=int, default=bootstrap, metavar='N',
                   help=f'study resamples for percentile intervals (0: none; default {bootstrap})')
    p.add_argument('--ci', type=float, default=0.95, help='interval level')
    p.add_argument('--seed', type=int, default=0, help='seed of the resamples')


def _train(args) -> int:
    from mammo_det.apis.runner import run_from_args

    run_from_args(args, 'train')
    return 0


def _test(args) -> int:
    from mammo_det.apis.runner import run_from_args

    run_from_args(args, 'test')
    return 0


def _weights(args) -> int:
    from mmengine.config import Config

    from mammo_det.apis.weights import WeightsError, config_checkpoints, fetch, hub_checkpoint_dir

    try:
        urls = list(dict.fromkeys(u for c in args.configs for u in config_checkpoints(Config.fromfile(c))))
        done = fetch(urls, args.cache_dir)
    except WeightsError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    for d in done:
        print(f"{d['status']:10s} {d['path']}  <- {d['url']}")
    print(f'{len(done)} checkpoint(s) in {hub_checkpoint_dir(args.cache_dir)}'
          + (f'; on the compute nodes set TORCH_HOME={args.cache_dir}' if args.cache_dir else ''))
    return 0


def _infer(args) -> int:
    from mammo_det.apis.inference import ThresholdError, infer

    if args.fppi is not None and args.thresholds is None:
        print('error: --fppi chooses an operating point of --thresholds METRICS_JSON', file=sys.stderr)
        return 2
    try:
        res = infer(args.config, args.checkpoint, args.inputs, args.out, device=args.device,
                    batch_size=args.batch_size, score_thr=args.score_thr, workers=args.workers,
                    thresholds=args.thresholds, fppi=args.fppi)
    except ThresholdError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    for e in res['errors']:
        print(f"skipped {e['error']}", file=sys.stderr)
    n = sum(len(p['detections']) for p in res['predictions'])
    print(f"{len(res['predictions'])} images, {n} detections -> {os.path.join(args.out, 'predictions.json')}"
          + (f"; {len(res['errors'])} unreadable (errors.json)" if res['errors'] else ''))
    return 0


def _demo(args) -> int:
    from mammo_det.apis.demo import run_demo

    run_demo(args.out, studies=args.studies, scale=args.scale, epochs=args.epochs, seed=args.seed)
    return 0


def _benchmark(args) -> int:
    from mammo_det.apis.benchmark import BenchmarkError, SlurmOptions, benchmark, collect, submit_slurm
    from mammo_det.apis.runner import parse_cfg_options

    try:
        if args.collect:
            rows, missing = collect(args.collect, bootstrap=args.bootstrap, seed=args.seed, ci=args.ci)
            print(open(os.path.join(args.collect, 'leaderboard.md')).read())
            print(f'{len(rows)} configs -> {args.collect}/leaderboard.{{md,csv,png}}'
                  + (f"; not finished: {', '.join(missing)}" if missing else ''))
            return 0
        if not args.configs or not args.data or not args.work_dir:
            raise BenchmarkError('give CONFIG... --data DIR --work-dir DIR (or --collect WORK_DIR)')
        cfg_options = parse_cfg_options(args.cfg_options)
        if args.launcher == 'slurm':
            if not args.partition:
                raise BenchmarkError('--launcher slurm needs --partition')
            opts = SlurmOptions(args.partition, args.gpus, args.gpus_per_node, args.cpus_per_task, args.time,
                                shlex.split(args.sbatch_args))
            jobs = submit_slurm(args.configs, args.data, args.work_dir, opts, args.checkpoints, cfg_options)
            print(f'{len(jobs)} jobs submitted; when they have finished: mammo-det benchmark --collect {args.work_dir}')
            return 0
        rows = benchmark(args.configs, args.data, args.work_dir, checkpoints=args.checkpoints,
                         cfg_options=cfg_options, bootstrap=args.bootstrap, seed=args.seed, ci=args.ci)
    except BenchmarkError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    print(open(os.path.join(args.work_dir, 'leaderboard.md')).read())
    print(f'{len(rows)} configs -> {args.work_dir}/leaderboard.{{md,csv,png}}')
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='mammo-det', description=__doc__)
    sub = p.add_subparsers(dest='command', required=True)

    s = sub.add_parser('synth', help='write a synthetic release in a real layout (VinDr-Mammo by default)')
    s.add_argument('root')
    s.add_argument('--format', choices=('vindr', 'cbis-ddsm', 'inbreast', 'mias', 'embed'), default='vindr')
    s.add_argument('--studies', type=int, default=20, help='studies (VinDr), patients, or films (mini-MIAS)')
    s.add_argument('--seed', type=int, default=0)
    s.add_argument('--scale', type=float, help='image size factor (VinDr default 1.0: real 3518x2800 etc.; others '
                                               'small by default; mini-MIAS is always 1024 x 1024)')
    s.add_argument('--positive-rate', type=float, default=0.3, help='share of breasts with BI-RADS 3-5')
    s.add_argument('--workers', type=int, default=1)
    s.set_defaults(func=_synth)

    c = sub.add_parser('convert', help='a mammography release (VinDr-Mammo, CBIS-DDSM, INbreast, mini-MIAS, EMBED) '
                                       '-> COCO')
    c.add_argument('root', help='the release folder')
    c.add_argument('out')
    c.add_argument('--format', choices=('vindr', 'cbis-ddsm', 'inbreast', 'mias', 'embed'),
                   help='the release layout (default: detected from its files)')
    c.add_argument('--max-size', type=int, default=2048, help='longest output side (0: keep the size)')
    c.add_argument('--bit-depth', type=int, choices=(8, 16), default=8)
    c.add_argument('--crop', action=argparse.BooleanOptionalAction, default=True,
                   help='crop to the breast (never cutting a box)')
    c.add_argument('--voi', choices=('auto', 'window', 'lut', 'percentile', 'minmax'), default='auto',
                   help='display transform; auto: first window, else first VOI LUT, else percentiles')
    c.add_argument('--window-index', type=int, default=0, help='which window / VOI LUT')
    c.add_argument('--val-fraction', type=float, default=0.1, help='share of patients for validation')
    c.add_argument('--test-fraction', type=float, default=0.2,
                   help='share of patients for test, where the release has no official test split')
    c.add_argument('--seed', type=int, default=0, help='seed of the splits')
    c.add_argument('--classes', help='comma-separated subset, e.g. mass,calcification')
    c.add_argument('--workers', type=int, default=0, help='processes (0: all cores)')
    c.add_argument('--on-error', choices=('fail', 'skip'), default='fail')
    c.add_argument('--shard', metavar='K/N', help='convert only shard K of N (by a hash of the study id); join the '
                                                  'N outputs with mammo-det merge')
    c.set_defaults(func=_convert)

    m = sub.add_parser('merge', help='join the outputs of convert --shard K/N into one dataset')
    m.add_argument('out')
    m.add_argument('shards', nargs='+', help='the N shard output folders')
    m.set_defaults(func=_merge)

    e = sub.add_parser('evaluate', help='per-finding COCO AP, FROC, BI-RADS and breast-level metrics')
    e.add_argument('gt', help='COCO ground truth JSON (instances_*.json)')
    e.add_argument('pred', help='COCO results JSON (list of detections)')
    e.add_argument('--out', required=True)
    add_protocol_args(e, bootstrap=0)
    e.add_argument('--by', type=_names, default=[], metavar='KEY[,KEY...]',
                   help='subgroups: density, view, laterality, vendor (every metric per value)')
    e.set_defaults(func=_evaluate)

    k = sub.add_parser('compare', help='paired bootstrap comparison of models on one ground truth')
    k.add_argument('gt', help='COCO ground truth JSON')
    k.add_argument('preds', nargs='+', help='COCO results JSON per model; the first is the reference')
    k.add_argument('--names', nargs='+', help='one name per model (default: the file names)')
    k.add_argument('--out', required=True)
    add_protocol_args(k, bootstrap=1000)
    k.set_defaults(func=_compare)

    from mammo_det.apis.runner import add_runner_args  # argparse only: no torch or mmdet

    add_runner_args(sub.add_parser('train', help='train a detector (the options of tools/train.py)'),
                    'train').set_defaults(func=_train)
    add_runner_args(sub.add_parser('test', help='test a checkpoint (the options of tools/test.py)'),
                    'test').set_defaults(func=_test)

    w = sub.add_parser('weights', help="download the pretrained checkpoints the configs name, for offline nodes")
    w.add_argument('configs', nargs='+')
    w.add_argument('--cache-dir', help='fill DIR/hub/checkpoints (then TORCH_HOME=DIR); default: the torch hub '
                                       'cache, $TORCH_HOME/hub/checkpoints')
    w.set_defaults(func=_weights)

    i = sub.add_parser('infer', help='detect on DICOMs/PNGs; boxes in the original DICOM pixel grid')
    i.add_argument('config')
    i.add_argument('checkpoint')
    i.add_argument('inputs', nargs='+', help='files or folders (searched recursively for .dicom/.dcm/.png)')
    i.add_argument('--out', required=True)
    i.add_argument('--batch-size', type=int, default=4)
    i.add_argument('--score-thr', type=float, default=0.05)
    i.add_argument('--thresholds', metavar='METRICS_JSON',
                   help="per-class thresholds: the operating points of an evaluation's metrics.json (replace "
                        '--score-thr)')
    i.add_argument('--fppi', type=float, help='which operating point of --thresholds (default 0.5)')
    i.add_argument('--workers', type=int, default=2, help='processes that decode and preprocess (0: none)')
    i.add_argument('--device', help='cpu, cuda:0 ... (default: cuda when available)')
    i.set_defaults(func=_infer)

    d = sub.add_parser('demo', help='synth -> convert -> train -> test -> evaluate -> report.md, on CPU')
    d.add_argument('--out', default='work_dirs/demo')
    d.add_argument('--studies', type=int, default=60)
    d.add_argument('--scale', type=float, default=0.15)
    d.add_argument('--epochs', type=int, default=12)
    d.add_argument('--seed', type=int, default=0)
    d.set_defaults(func=_demo)

    b = sub.add_parser('benchmark', help='train and test several configs; one leaderboard with intervals')
    b.add_argument('configs', nargs='*', help='configs; the first is the reference of the paired differences')
    b.add_argument('--data', help='a folder written by convert')
    b.add_argument('--work-dir')
    b.add_argument('--checkpoints', nargs='+', help='test these instead of training (one per config)')
    b.add_argument('--cfg-options', nargs='+')
    b.add_argument('--bootstrap', type=int, default=1000, metavar='N', help='study resamples (0: no intervals)')
    b.add_argument('--seed', type=int, default=0)
    b.add_argument('--ci', type=float, default=0.95)
    b.add_argument('--launcher', choices=('none', 'slurm'), default='none',
                   help='slurm: one sbatch job per config (tools/slurm_train.sh, slurm_test.sh), then --collect')
    b.add_argument('--partition', help='Slurm partition')
    b.add_argument('--gpus', type=int, default=8, help='GPUs per job')
    b.add_argument('--gpus-per-node', type=int, default=8)
    b.add_argument('--cpus-per-task', type=int, default=5)
    b.add_argument('--time', default='24:00:00', help='Slurm time limit per job')
    b.add_argument('--sbatch-args', default='', metavar='"OPTS"',
                   help='more sbatch options in one string, e.g. "--account=lab --qos=high"')
    b.add_argument('--collect', metavar='WORK_DIR', help='the leaderboard of the finished jobs of a benchmark')
    b.set_defaults(func=_benchmark)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
