"""``mammo-det`` command line. Imports lazily: ``--help``, ``synth``, ``convert``, ``evaluate``, ``fuse`` and
``weights`` start without torch or mmdet; ``train`` and ``test`` share their options with ``tools/train.py`` and
``tools/test.py``.

Each command is a pair beside each other: ``_<name>_args(parser)`` adds its options and ``_<name>(args)`` runs it.
Errors a user can act on (:class:`mammo_det.errors.UserError`) end in one place, :func:`main`: their message and
exit status 2.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import List, Optional

from data_converters.formats import FORMATS  # names only: importing it loads no converter


def _floats(text: str) -> list:
    try:
        return [float(v) for v in text.split(',') if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected comma-separated numbers, got {text!r}') from None


def _names(text: str) -> list:
    return [v.strip() for v in text.split(',') if v.strip()]


# --- synth ---------------------------------------------------------------------------------------------------------

def _synth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('root')
    p.add_argument('--format', choices=tuple(FORMATS), default='vindr')
    p.add_argument('--studies', type=int, default=20, help='studies (VinDr), patients, or films (mini-MIAS)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--scale', type=float, help='image size factor (VinDr default 1.0: real 3518x2800 etc.; others '
                                               'small by default; mini-MIAS is always 1024 x 1024)')
    p.add_argument('--positive-rate', type=float, default=0.3, help='share of breasts with BI-RADS 3-5')
    p.add_argument('--distractors', type=float, default=0.0,
                   help='VinDr: unannotated lesion-like blobs per image, each in one view only (mean)')
    p.add_argument('--workers', type=int, default=1)


def _synth(args) -> int:
    if args.format != 'vindr':
        from data_converters.synth import write_release
        from mammo_det.fileio import write_json

        truth = write_release(args.root, args.format, seed=args.seed, scale=args.scale, size=args.studies)
        write_json(os.path.join(args.root, 'synth_truth.json'), truth, indent=1)
        boxes = sum(len(im['boxes']) for im in truth['images'].values())
        print(f"wrote a synthetic {args.format} release to {args.root}: {len(truth['images'])} images kept by the "
              f"converter ({boxes} boxes), {len(truth['traps'])} kinds of trap planted, "
              f"{len(truth['expected_skips'])} items the converter must leave out and report (synth_truth.json)")
        return 0
    from data_converters.synth.vindr import release_truth, write_dataset
    from mammo_det.fileio import write_json

    images = write_dataset(args.root, studies=args.studies, seed=args.seed, scale=args.scale or 1.0,
                           workers=args.workers, positive_rate=args.positive_rate, distractors=args.distractors)
    write_json(os.path.join(args.root, 'synth_truth.json'), release_truth(images), indent=1)
    boxes = sum(len(im.findings) for im in images)
    print(f'wrote {len(images)} images ({boxes} boxes) of {args.studies} studies to {args.root} (its geometry and '
          'lesion links: synth_truth.json)')
    return 0


# --- convert, merge ------------------------------------------------------------------------------------------------

def _convert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('root', help='the release folder')
    p.add_argument('out')
    p.add_argument('--format', choices=tuple(FORMATS), help='the release layout (default: detected from its files)')
    p.add_argument('--max-size', type=int, default=2048, help='longest output side (0: keep the size)')
    p.add_argument('--bit-depth', type=int, choices=(8, 16), default=8)
    p.add_argument('--crop', action=argparse.BooleanOptionalAction, default=True,
                   help='crop to the breast (never cutting a box)')
    p.add_argument('--voi', choices=('auto', 'window', 'lut', 'percentile', 'minmax'), default='auto',
                   help='display transform; auto: first window, else first VOI LUT, else percentiles')
    p.add_argument('--window-index', type=int, default=0, help='which window / VOI LUT')
    p.add_argument('--val-fraction', type=float, default=0.1, help='share of patients for validation')
    p.add_argument('--test-fraction', type=float, default=0.2,
                   help='share of patients for test, where the release has no official test split')
    p.add_argument('--seed', type=int, default=0, help='seed of the splits')
    p.add_argument('--classes', help='comma-separated subset, e.g. mass,calcification')
    p.add_argument('--workers', type=int, default=0, help='processes (0: all cores)')
    p.add_argument('--on-error', choices=('fail', 'skip'), default='fail')
    p.add_argument('--shard', metavar='K/N', help='convert only shard K of N (by a hash of the study id); join the '
                                                  'N outputs with mammo-det merge')


def _convert(args) -> int:
    from data_converters.core import ConvertOptions
    from data_converters.formats import convert
    from data_converters.splits import parse_shard

    opts = ConvertOptions(max_size=args.max_size or None, bit_depth=args.bit_depth, crop=args.crop, voi=args.voi,
                          window_index=args.window_index, val_fraction=args.val_fraction,
                          test_fraction=args.test_fraction, seed=args.seed,
                          classes=args.classes.split(',') if args.classes else None, workers=args.workers,
                          on_error=args.on_error, shard=parse_shard(args.shard) if args.shard else None)
    _print_report(convert(args.root, args.out, opts, args.format), args.out)
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


def _merge_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('out')
    p.add_argument('shards', nargs='+', help='the N shard output folders')


def _merge(args) -> int:
    from data_converters.merge import merge

    _print_report(merge(args.out, args.shards), args.out)
    return 0


# --- evaluate, compare ---------------------------------------------------------------------------------------------

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


def _protocol(args) -> dict:
    return dict(froc_iou=args.froc_iou, hit=args.hit, images=args.images, iou_thrs=args.iou_thrs)


def _load_eval_inputs(gt_path: str, pred_paths) -> tuple:
    from mammo_det.evaluation import load_json, validate_detections, validate_gt

    gt = load_json(gt_path, 'ground truth')
    validate_gt(gt, gt_path)
    return gt, [validate_detections(load_json(p, 'detections'), gt, p) for p in pred_paths]


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('gt', help='COCO ground truth JSON (instances_*.json)')
    p.add_argument('pred', help='COCO results JSON (list of detections)')
    p.add_argument('--out', required=True)
    add_protocol_args(p, bootstrap=0)
    p.add_argument('--by', type=_names, default=[], metavar='KEY[,KEY...]',
                   help='subgroups: density, view, laterality, vendor (every metric per value)')


def _evaluate(args) -> int:
    from mammo_det.evaluation import evaluate
    from mammo_det.evaluation.report import format_table, write_outputs

    gt, (dets,) = _load_eval_inputs(args.gt, [args.pred])
    metrics = evaluate(gt, dets, curves=True, by=args.by, bootstrap=args.bootstrap, ci=args.ci, seed=args.seed,
                       **_protocol(args))
    print(format_table(metrics))
    paths = write_outputs(metrics, args.out)
    print(f"wrote {', '.join(sorted(os.path.basename(p) for p in paths.values()))} to {args.out}")
    return 0


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('gt', help='COCO ground truth JSON')
    p.add_argument('preds', nargs='+', help='COCO results JSON per model; the first is the reference')
    p.add_argument('--names', nargs='+', help='one name per model (default: the file names)')
    p.add_argument('--out', required=True)
    add_protocol_args(p, bootstrap=1000)


def _compare(args) -> int:
    from mammo_det.evaluation import EvaluationInputError, compare
    from mammo_det.evaluation.report import comparison_markdown, write_comparison

    names = args.names or [os.path.splitext(os.path.basename(p))[0] for p in args.preds]
    if not args.names and len(set(names)) < len(names):  # same file names in different folders
        names = [f'{k}:{n}' for k, n in enumerate(names, 1)]
    if len(names) != len(args.preds):
        raise EvaluationInputError(f'{len(names)} --names for {len(args.preds)} prediction files')
    gt, preds = _load_eval_inputs(args.gt, args.preds)
    result = compare(gt, preds, names, bootstrap=args.bootstrap, ci=args.ci, seed=args.seed, **_protocol(args))
    print(comparison_markdown(result))
    write_comparison(result, args.out)
    print(f'wrote comparison.json, comparison.md, comparison.png to {args.out}')
    return 0


# --- train, test, weights, infer, demo -----------------------------------------------------------------------------

def _train(args) -> int:
    from mammo_det.apis.runner import run_from_args

    run_from_args(args, 'train')
    return 0


def _test(args) -> int:
    from mammo_det.apis.runner import run_from_args

    run_from_args(args, 'test')
    return 0


def _weights_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('configs', nargs='+')
    p.add_argument('--cache-dir', help='fill DIR/hub/checkpoints (then TORCH_HOME=DIR); default: the torch hub '
                                       'cache, $TORCH_HOME/hub/checkpoints')


def _weights(args) -> int:
    from mmengine.config import Config

    from mammo_det.apis.weights import config_checkpoints, fetch, hub_checkpoint_dir

    urls = list(dict.fromkeys(u for c in args.configs for u in config_checkpoints(Config.fromfile(c))))
    done = fetch(urls, args.cache_dir)
    for d in done:
        print(f"{d['status']:10s} {d['path']}  <- {d['url']}")
    print(f'{len(done)} checkpoint(s) in {hub_checkpoint_dir(args.cache_dir)}'
          + (f'; on the compute nodes set TORCH_HOME={args.cache_dir}' if args.cache_dir else ''))
    return 0


def _infer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('inputs', nargs='+', help='files or folders (searched recursively for .dicom/.dcm/.png)')
    p.add_argument('--out', required=True)
    p.add_argument('--batch-size', type=int, default=4)
    p.add_argument('--score-thr', type=float, default=0.05)
    p.add_argument('--thresholds', metavar='METRICS_JSON',
                   help="per-class thresholds: the operating points of an evaluation's metrics.json (replace "
                        '--score-thr)')
    p.add_argument('--fppi', type=float, help='which operating point of --thresholds (default 0.5)')
    p.add_argument('--fuser', metavar='FUSER_JSON',
                   help='rescore with a fitted two-view fuser (mammo-det fuse --fit) where both views are inputs')
    p.add_argument('--workers', type=int, default=2, help='processes that decode and preprocess (0: none)')
    p.add_argument('--device', help='cpu, cuda:0 ... (default: cuda when available)')


def _infer(args) -> int:
    from mammo_det.apis.inference import ThresholdError, infer

    if args.fppi is not None and args.thresholds is None:
        raise ThresholdError('--fppi chooses an operating point of --thresholds METRICS_JSON')
    res = infer(args.config, args.checkpoint, args.inputs, args.out, device=args.device,
                batch_size=args.batch_size, score_thr=args.score_thr, workers=args.workers,
                thresholds=args.thresholds, fppi=args.fppi, fuser=args.fuser)
    for e in res['errors']:
        print(f"skipped {e['error']}", file=sys.stderr)
    n = sum(len(p['detections']) for p in res['predictions'])
    print(f"{len(res['predictions'])} images, {n} detections -> {os.path.join(args.out, 'predictions.json')}"
          + (f"; {len(res['errors'])} unreadable (errors.json)" if res['errors'] else '')
          + (f"; {res['fusion']['rescored']} rescored with both views" if res['fusion'] else ''))
    return 0


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--out', default='work_dirs/demo')
    p.add_argument('--studies', type=int, default=60)
    p.add_argument('--scale', type=float, default=0.15)
    p.add_argument('--epochs', type=int, default=None, help="default: the demo config's max_epochs")
    p.add_argument('--seed', type=int, default=0, help='seeds the synthetic release and the training')


def _demo(args) -> int:
    from mammo_det.apis.demo import run_demo

    run_demo(args.out, studies=args.studies, scale=args.scale, epochs=args.epochs, seed=args.seed)
    return 0


# --- fuse --------------------------------------------------------------------------------------------------------

def _fuse_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('gt', help='COCO ground truth or image list of the images (study, laterality, view, landmarks '
                              'and pixel spacing per image, as mammo-det convert writes them)')
    p.add_argument('pred', help='COCO results JSON (list of detections)')
    p.add_argument('--out', required=True, help='the fused predictions; with --fit: the fitted fuser')
    p.add_argument('--fit', action='store_true', help='fit the rescoring model on these (validation) predictions')
    p.add_argument('--fuser', metavar='FUSER_JSON', help='a fuser fitted with --fit, to apply')
    p.add_argument('--match-iou', type=float, default=0.1,
                   help='--fit: IoU from which a detection counts as hitting a lesion')


def _fuse(args) -> int:
    from mammo_det.evaluation import load_json, validate_detections, validate_gt
    from mammo_det.fileio import write_json
    from mammo_det.fusion import FusionError, fit_fuser, fuse_predictions, load_fuser

    gt = load_json(args.gt, 'ground truth')
    validate_gt(gt, args.gt)
    dets = validate_detections(load_json(args.pred, 'detections'), gt, args.pred)
    if args.fit:
        fuser = dict(fit_fuser(gt, dets, match_iou=args.match_iou), fit_on=dict(gt=args.gt, pred=args.pred))
        write_json(args.out, fuser, indent=1)
        print(f"fitted on {fuser['fit']['detections']} detections ({fuser['fit']['linked']} with a partner) of "
              f"{fuser['fit']['breasts']} breasts with both views: weights {fuser['weights']} -> {args.out}")
        return 0
    if not args.fuser:
        raise FusionError('give --fuser FUSER_JSON (fit one with --fit on the validation split), or --fit')
    fuser = load_fuser(args.fuser)
    fused, stats = fuse_predictions(gt, dets, fuser)
    write_json(args.out, fused)
    # the fuser's parameters and what was fused, beside the predictions (a predictions file is a plain list)
    write_json(args.out + '.fusion.json', dict(fuser=fuser, gt=args.gt, pred=args.pred, **stats), indent=1)
    print(f"{stats['rescored']} of {len(fused)} detections rescored on {stats['breasts']} breasts with both views "
          f"({stats['linked']} with a partner) in {stats['seconds']:.2f} s -> {args.out} (+ .fusion.json)")
    return 0


# --- benchmark -----------------------------------------------------------------------------------------------------

def _benchmark_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('configs', nargs='*', help='configs; the first is the reference of the paired differences')
    p.add_argument('--data', help='a folder written by convert')
    p.add_argument('--work-dir')
    p.add_argument('--checkpoints', nargs='+', help='test these instead of training (one per config)')
    p.add_argument('--predictions', nargs='+', metavar='NAME=FILE', default=[],
                   help='predictions made elsewhere (COCO results on the test split, e.g. from import-preds), scored '
                        'beside the configs on the same leaderboard')
    p.add_argument('--cfg-options', nargs='+')
    p.add_argument('--bootstrap', type=int, default=1000, metavar='N', help='study resamples (0: no intervals)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--ci', type=float, default=0.95)
    p.add_argument('--launcher', choices=('none', 'slurm'), default='none',
                   help='slurm: one sbatch job per config (tools/slurm_train.sh, slurm_test.sh), then --collect')
    p.add_argument('--partition', help='Slurm partition')
    p.add_argument('--gpus', type=int, default=8, help='GPUs per job')
    p.add_argument('--gpus-per-node', type=int, default=8)
    p.add_argument('--cpus-per-task', type=int, default=5)
    p.add_argument('--time', default='24:00:00', help='Slurm time limit per job')
    p.add_argument('--sbatch-args', default='', metavar='"OPTS"',
                   help='more sbatch options in one string, e.g. "--account=lab --qos=high"')
    p.add_argument('--collect', metavar='WORK_DIR', help='the leaderboard of the finished jobs of a benchmark')


def _read_text(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def _benchmark(args) -> int:
    from mammo_det.apis.benchmark import BenchmarkError, SlurmOptions, benchmark, collect, submit_slurm
    from mammo_det.apis.runner import parse_cfg_options

    if args.collect:
        rows, missing = collect(args.collect, bootstrap=args.bootstrap, seed=args.seed, ci=args.ci)
        print(_read_text(os.path.join(args.collect, 'leaderboard.md')))
        print(f'{len(rows)} configs -> {args.collect}/leaderboard.{{md,csv,png}}'
              + (f"; not finished: {', '.join(missing)}" if missing else ''))
        return 0
    if not (args.configs or args.predictions) or not args.data or not args.work_dir:
        raise BenchmarkError('give CONFIG... and/or --predictions NAME=FILE..., --data DIR --work-dir DIR (or '
                             '--collect WORK_DIR)')
    predictions = {}
    for item in args.predictions:
        name, sep, path = item.partition('=')
        if not sep or not name or not path:
            raise BenchmarkError(f'--predictions {item!r}: give NAME=FILE')
        predictions[name] = path
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
                     cfg_options=cfg_options, bootstrap=args.bootstrap, seed=args.seed, ci=args.ci,
                     predictions=predictions)
    print(_read_text(os.path.join(args.work_dir, 'leaderboard.md')))
    print(f'{len(rows)} configs -> {args.work_dir}/leaderboard.{{md,csv,png}}')
    return 0


# --- other frameworks ----------------------------------------------------------------------------------------------

def _export_args(p: argparse.ArgumentParser) -> None:
    from mammo_det.interop import EXPORT_FORMATS as FORMATS

    p.add_argument('data', help='a folder written by mammo-det convert')
    p.add_argument('out', help='a new folder')
    p.add_argument('--format', choices=FORMATS, required=True,
                   help='yolo: the ultralytics layout (data.yaml); rfdetr: train/valid/test with their COCO files')


def _export(args) -> int:
    from mammo_det.interop.export import export

    m = export(args.data, args.format, args.out)
    print(f"{args.format} export of {m['data']} -> {args.out}: " + ', '.join(
        f"{split} {n} images ({m['boxes'][split]} boxes)" for split, n in m['images'].items()))
    return 0


def _import_args(p: argparse.ArgumentParser) -> None:
    from mammo_det.interop import BOX_GRIDS, CATEGORY_IDS, PRED_FORMATS

    p.add_argument('gt', help='the COCO ground truth the predictions are for (annotations/instances_test.json)')
    p.add_argument('pred', help='the predictions: a file, or the folder of yolo-txt labels')
    p.add_argument('--pred-format', choices=PRED_FORMATS, required=True)
    p.add_argument('--out', required=True, help='COCO results JSON to write')
    p.add_argument('--boxes', choices=BOX_GRIDS, default='converted',
                   help='the pixel grid of the boxes: the converted image (default) or the original DICOM')
    p.add_argument('--category-ids', choices=CATEGORY_IDS, default='dataset',
                   help="coco files: the dataset's category ids (detectron2, torchvision), or contiguous from 0 "
                        '(transformers labels) or 1')


def _import_preds(args) -> int:
    from mammo_det.fileio import write_json
    from mammo_det.interop.imports import import_predictions

    dets, stats = import_predictions(args.gt, args.pred, args.pred_format, args.boxes, args.category_ids)
    write_json(args.out, dets)
    print(f'{stats.detections} detections on {stats.images} images -> {args.out} ({stats.clipped} clipped to the '
          f'image, {stats.dropped} dropped with nothing inside)')
    return 0


def _birads_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('action', choices=('apply',), help='apply: classify the BI-RADS of every box of a predictions file '
                   '(train the classifier first: mammo-det train configs/birads/...)')
    p.add_argument('config', help='a BiradsClassifier config')
    p.add_argument('checkpoint')
    p.add_argument('predictions', help='COCO results on --split of --data (e.g. from import-preds)')
    p.add_argument('--data', required=True, help='the converted dataset the predictions are on')
    p.add_argument('--split', default='test', choices=('train', 'val', 'test'))
    p.add_argument('--out', required=True, help='the predictions with birads_scores and birads')
    p.add_argument('--device', help='cpu, cuda:0 ... (default: cuda when available)')


def _birads(args) -> int:
    from mammo_det.apis.birads import apply_birads
    from mammo_det.fileio import write_json

    dets = apply_birads(args.config, args.checkpoint, args.predictions, args.data, args.split, args.device)
    write_json(args.out, dets)
    print(f'{len(dets)} boxes with BI-RADS -> {args.out}')
    return 0


def _runner_args(mode: str):
    def add(p: argparse.ArgumentParser) -> None:
        from mammo_det.apis.runner import add_runner_args  # argparse only: no torch or mmdet

        add_runner_args(p, mode)
    return add


# name, help, options, run
COMMANDS = [
    ('synth', 'write a synthetic release in a real layout (VinDr-Mammo by default)', _synth_args, _synth),
    ('convert', 'a mammography release (VinDr-Mammo, CBIS-DDSM, INbreast, mini-MIAS, EMBED) -> COCO', _convert_args,
     _convert),
    ('merge', 'join the outputs of convert --shard K/N into one dataset', _merge_args, _merge),
    ('evaluate', 'per-finding COCO AP, FROC, BI-RADS and breast-level metrics', _evaluate_args, _evaluate),
    ('compare', 'paired bootstrap comparison of models on one ground truth', _compare_args, _compare),
    ('train', 'train a detector (the options of tools/train.py)', _runner_args('train'), _train),
    ('test', 'test a checkpoint (the options of tools/test.py)', _runner_args('test'), _test),
    ('weights', 'download the pretrained checkpoints the configs name, for offline nodes', _weights_args, _weights),
    ('infer', 'detect on DICOMs/PNGs; boxes in the original DICOM pixel grid', _infer_args, _infer),
    ('fuse', 'link the CC and MLO detections of each breast and rescore them (two-view reading)', _fuse_args,
     _fuse),
    ('demo', 'synth -> convert -> train -> test -> evaluate -> report.md, on CPU', _demo_args, _demo),
    ('benchmark', 'train and test several configs; one leaderboard with intervals', _benchmark_args, _benchmark),
    ('export', 'the converted data in another framework\'s layout (ultralytics YOLO, RF-DETR)', _export_args,
     _export),
    ('import-preds', 'predictions of another framework (YOLO txt/JSON, COCO, CSV) -> COCO results', _import_args,
     _import_preds),
    ('birads', "BI-RADS for any framework's boxes from a trained BiradsClassifier", _birads_args, _birads),
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='mammo-det', description=__doc__.split('\n\n')[0])
    sub = p.add_subparsers(dest='command', required=True)
    for name, help_text, add_args, run in COMMANDS:
        cmd = sub.add_parser(name, help=help_text)
        add_args(cmd)
        cmd.set_defaults(func=run)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    from mammo_det.errors import UserError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
