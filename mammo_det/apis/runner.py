"""One option surface and one Runner builder for training and testing.

``tools/train.py``, ``tools/test.py`` and ``mammo-det train|test`` all call :func:`add_runner_args` and
:func:`run_from_args`, so every option works the same from each of them.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import os
import sys
import os.path as osp
from typing import Optional, Sequence

from mammo_det.errors import UserError

LAUNCHERS = ('none', 'pytorch', 'slurm')


class SetupError(UserError, RuntimeError):
    """The run cannot start as asked (no GPU for the launcher or AMP, an empty validation split); the message
    says what to do. Raised before anything is built."""


def add_runner_args(parser: argparse.ArgumentParser, mode: str) -> argparse.ArgumentParser:
    """Adds the options of ``mode`` ('train' or 'test') to ``parser`` (positional arguments included)."""
    if mode not in ('train', 'test'):
        raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
    parser.add_argument('config', help='config file')
    if mode == 'test':
        parser.add_argument('checkpoint', help='checkpoint to test')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default work_dirs/<config name>)')
    parser.add_argument('--data-root', help='a folder written by `mammo-det convert` (overrides the config)')
    if mode == 'train':
        parser.add_argument('--resume', action='store_true', help='continue from the last checkpoint in the work dir')
        parser.add_argument('--load-from', help='initialise the weights from this checkpoint (no resume)')
        parser.add_argument('--amp', action='store_true', help='mixed precision (the *-amp-* configs have it on)')
        parser.add_argument('--fp32', action='store_true',
                            help='train an AMP config in full precision (the only way on a machine without a GPU)')
        parser.add_argument('--auto-scale-lr', action='store_true',
                            help="scale the config's lr by (GPUs x batch size) / auto_scale_lr.base_batch_size")
    else:
        parser.add_argument('--out', help='COCO results JSON to write (boxes with birads and birads_scores)')
        parser.add_argument('--report-dir', help='write metrics.json, per_category.csv and the plots here')
        parser.add_argument('--show-dir', help='draw predictions into this folder (under the work dir)')
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE', help='override config settings')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher (torchrun: pytorch)')
    parser.add_argument('--cpu-dist', action='store_true',
                        help='allow a distributed launcher without a GPU: train on CPU processes with gloo')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    return parser


def run_from_args(args: argparse.Namespace, mode: str):
    """Builds the Runner the options describe and runs it (``train()`` or ``test()``). A run that cannot start
    exits with status 2 and the reason, without a stack trace (as :func:`mammo_det.cli.main` does)."""
    try:
        return _run(args, mode)
    except UserError as exc:
        print(f'error: {exc}', file=sys.stderr)
        raise SystemExit(2) from None


def _run(args: argparse.Namespace, mode: str):
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    common = dict(work_dir=args.work_dir, launcher=args.launcher, cfg_options=parse_cfg_options(args.cfg_options),
                  data_root=args.data_root, cpu_dist=args.cpu_dist)
    if mode == 'train':
        runner = build_train_runner(args.config, resume=args.resume, amp=args.amp, fp32=args.fp32,
                                    auto_scale_lr=args.auto_scale_lr, load_from=args.load_from, **common)
        return runner.train()
    runner = build_test_runner(args.config, args.checkpoint, out=args.out, report_dir=args.report_dir,
                               show_dir=args.show_dir, **common)
    return runner.test()


_RUNS = itertools.count()


def load_config(config, work_dir: Optional[str] = None, cfg_options: Optional[dict] = None,
                data_root: Optional[str] = None):
    """Reads a config (a path, or a Config that is copied), applies ``--cfg-options`` and an optional data root
    (all loaders and evaluators)."""
    from mmengine.config import Config

    from mammo_det.zoo import resolve_checkpoints

    cfg = Config.fromfile(config) if isinstance(config, (str, os.PathLike)) else copy.deepcopy(config)
    name = osp.splitext(osp.basename(cfg.filename or 'config'))[0]
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data_root:
        set_data_root(cfg, data_root)
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join('work_dirs', name)
    if cfg.get('model'):
        set_model_classes(cfg)
        resolve_checkpoints(cfg.model)  # torchvision:// and open-mmlab:// by URL: MMEngine then needs no torchvision
    if isinstance(cfg.get('visualizer'), dict):
        # MMEngine keeps one visualizer per name for the whole process, with the log folder of the run that made
        # it: a second run in the same process (benchmark, demo) would write its scalars into the first one's.
        cfg.visualizer['name'] = f"{cfg.visualizer.get('name', 'visualizer')}@{osp.abspath(cfg.work_dir)}" \
                                 f"@{next(_RUNS)}"
    return cfg


def dataset_classes(cfg) -> tuple:
    """(class names, where they were read) of the config's data: the first of the train, val and test datasets
    that states them in ``metainfo.classes`` or whose annotation file exists (its categories, in id order, as
    the dataset reads them); else the dataset's default classes (the 10 finding types); ((), '') for none."""
    import json

    from mammo_det.vocab import FINDING_CATEGORIES

    datasets = []
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader and loader.get('dataset'):
            ds = loader['dataset']
            datasets.append(ds.get('dataset', ds))  # wrappers (RepeatDataset, ...)
    for ds in datasets:
        classes = (ds.get('metainfo') or {}).get('classes')
        if classes:
            return tuple(classes), 'the config\'s metainfo.classes'
        path = osp.join(ds.get('data_root') or '', ds.get('ann_file') or '')
        if ds.get('ann_file') and osp.isfile(path):
            with open(path) as fh:
                cats = json.load(fh).get('categories') or []
            return tuple(c['name'] for c in sorted(cats, key=lambda c: c['id'])), path
    if any(ds.get('type') in ('MammoDataset', 'VinDrMammoDataset') for ds in datasets):
        return FINDING_CATEGORIES, 'the dataset\'s default classes'
    return (), ''


def set_model_classes(cfg, classes: Optional[Sequence[str]] = None, where: str = '') -> None:
    """The model's heads are built for the dataset's classes (``classes``, read from ``where``; default: the
    config's data, :func:`dataset_classes`): a ``BiradsDetector`` without ``num_classes`` gets their count; any
    other head's ``num_classes`` (every stage's; not the RPN's) must equal it.

    Raises:
        SetupError: a config's count disagrees with the data; the message names the key, both counts and where the
            classes were read.
    """
    from mammo_det.zoo import ClassCountError, check_class_counts, class_counts

    if not classes:
        classes, where = dataset_classes(cfg)
    if not classes:
        return
    n = len(classes)
    model = cfg.model
    try:
        if model.get('type') == 'BiradsDetector':
            if model.get('num_classes') is None:
                model['num_classes'] = n
            # what a user wrote: the count, the options, and the wrapped model where it is a dict (not a zoo file)
            detector = model.get('detector')
            check_class_counts(dict(num_classes=model['num_classes'],
                                    detector_options=model.get('detector_options') or {},
                                    detector=detector if isinstance(detector, dict) else {}), n, 'model')
            return
        for path, node in class_counts(model):
            if node['num_classes'] != n:
                raise ClassCountError(f'{path}.num_classes = {node["num_classes"]!r}, but the dataset has {n} classes')
    except ClassCountError as exc:
        raise SetupError(f'{cfg.filename or "the config"}: {exc} ({", ".join(classes)}; from {where})') from None


def set_data_root(cfg, data_root: str) -> None:
    """Points every dataloader and MammoMetric of ``cfg`` at a converted dataset folder."""
    data_root = data_root.rstrip('/') + '/'
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader:
            ds = loader['dataset']
            ds = ds.get('dataset', ds)  # wrappers (RepeatDataset, ...)
            ds['data_root'] = data_root
        ev = cfg.get(f'{split}_evaluator')
        if ev and ev.get('type') == 'MammoMetric':
            ev['ann_file'] = data_root + f'annotations/instances_{split}.json'


def set_max_epochs(cfg, epochs: int) -> None:
    """Changes the length of an epoch-based schedule: ``train_cfg.max_epochs`` and every epoch-based scheduler
    whose end (or ``T_max``) was the old length follow; milestones past the new end are dropped."""
    old = cfg.train_cfg.max_epochs
    cfg.train_cfg.max_epochs = epochs
    for sched in cfg.get('param_scheduler') or []:
        if not sched.get('by_epoch', True):
            continue
        for key in ('end', 'T_max'):
            if sched.get(key) == old:
                sched[key] = epochs
        if 'milestones' in sched:
            sched['milestones'] = [m for m in sched['milestones'] if m < epochs]


def _amp_to_fp32(cfg) -> None:
    """AmpOptimWrapper -> OptimWrapper with the same optimizer, clipping and accumulation."""
    ow = cfg.optim_wrapper
    if ow.get('type') != 'AmpOptimWrapper':
        return
    ow.type = 'OptimWrapper'
    for key in ('loss_scale', 'dtype', 'use_fsdp'):
        ow.pop(key, None)


def _check_device(cfg, launcher: str, cpu_dist: bool, training: bool) -> None:
    """Fails before anything is built when the config or launcher needs a GPU that is not there."""
    import torch

    if torch.cuda.is_available():
        return
    build = f'torch {torch.__version__}' + (f' built for CUDA {torch.version.cuda}' if torch.version.cuda else
                                            ' (CPU build)')
    if launcher != 'none' and not cpu_dist:
        raise SetupError(f'--launcher {launcher} but no GPU is visible to this process ({build}); check '
                           'CUDA_VISIBLE_DEVICES and the job\'s GPU request, or pass --cpu-dist to train on CPU '
                           'processes with gloo on purpose')
    if training and cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
        raise SetupError(f'this config trains with mixed precision (AmpOptimWrapper), which needs a GPU, and no GPU '
                           f'is visible ({build}); pass --fp32 to train it in full precision on the CPU')


def build_train_runner(config, work_dir: Optional[str] = None, launcher: str = 'none', resume: bool = False,
                       amp: bool = False, fp32: bool = False, auto_scale_lr: bool = False,
                       cfg_options: Optional[dict] = None, data_root: Optional[str] = None,
                       load_from: Optional[str] = None, cpu_dist: bool = False):
    """A Runner ready to ``train()``.

    Before anything is built: a distributed launcher or an AMP config without a GPU fails with what to pass
    instead; the pretrained weights the config names are found in (or downloaded into) the torch hub cache, or
    training stops with the file, its URL and the ``mammo-det weights`` command; an empty validation split fails
    with its file named. On CPU with a distributed launcher (``cpu_dist``) the gloo group starts first.

    Args:
        resume: continue from the last checkpoint in ``work_dir`` (iteration, optimizer, schedule, RNG).
        amp: mixed precision (``AmpOptimWrapper``); prefer the ``*-amp-*`` configs, which also keep IoUs in fp32.
        fp32: the opposite: an AMP config trains with the plain ``OptimWrapper``.
        auto_scale_lr: scale the lr by the real total batch over ``auto_scale_lr.base_batch_size``.
    """
    from mmengine.runner import Runner

    from mammo_det.apis.weights import ensure_weights
    from mammo_det.engine.dist import init_dist_for_launcher

    if amp and fp32:
        raise SetupError('--amp and --fp32 contradict each other: give one (--amp: mixed precision on a GPU; --fp32: '
                         'an AMP config in full precision)')
    cfg = load_config(config, work_dir, cfg_options, data_root)
    cfg.launcher = launcher
    if amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if fp32:
        _amp_to_fp32(cfg)
    if auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError(f'{cfg.filename} has no auto_scale_lr.base_batch_size: --auto-scale-lr needs it')
        cfg.auto_scale_lr = dict(cfg.auto_scale_lr, enable=True)
    if resume:
        cfg.resume = True
        cfg.load_from = None
    elif load_from:
        cfg.load_from = load_from
    _check_device(cfg, launcher, cpu_dist, training=True)
    _check_val_split(cfg)
    ensure_weights(cfg, cfg.filename or 'CONFIG')
    init_dist_for_launcher(cfg, launcher, cpu_dist)
    return Runner.from_cfg(cfg)


def _check_val_split(cfg) -> None:
    """An empty validation split fails here, naming the file, not later inside MMEngine (which builds the
    validation dataset at the start of training whatever the validation interval)."""
    import json

    loader = cfg.get('val_dataloader')
    if not loader or not cfg.get('val_cfg') or not cfg.get('val_evaluator'):
        return  # no validation configured
    ds = loader['dataset']
    ds = ds.get('dataset', ds)
    path = osp.join(ds.get('data_root') or '', ds['ann_file'])
    if not osp.exists(path):
        return  # the dataset reports a missing file itself, with its own message
    with open(path) as fh:
        images = json.load(fh).get('images', [])
    if not images:
        raise SetupError(f'{path}: the validation split has no images; convert with a larger --val-fraction (or '
                         'more data), or train without validation: --cfg-options val_cfg=None val_dataloader=None '
                         'val_evaluator=None default_hooks.checkpoint.save_best=None')


def build_test_runner(config, checkpoint: str, work_dir: Optional[str] = None, launcher: str = 'none',
                      out: Optional[str] = None, report_dir: Optional[str] = None,
                      cfg_options: Optional[dict] = None, data_root: Optional[str] = None,
                      show_dir: Optional[str] = None, cpu_dist: bool = False):
    """A Runner ready to ``test()`` with ``checkpoint``.

    Args:
        out: the metric writes the COCO results there (entries carry ``birads`` and ``birads_scores`` when the
            model predicts them; boxes in the converted image's pixels).
        report_dir: the metric writes metrics.json, per_category.csv and the plots there.
    """
    from mmengine.runner import Runner

    from mammo_det.engine.dist import init_dist_for_launcher

    cfg = load_config(config, work_dir, cfg_options, data_root)
    cfg.launcher = launcher
    cfg.load_from = checkpoint
    evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, (list, tuple)) else [cfg.test_evaluator]
    for ev in evaluators:
        if ev.get('type') == 'MammoMetric':
            if out:
                ev['results_file'] = out
            if report_dir:
                ev['report_dir'] = report_dir
    if show_dir:
        cfg.default_hooks.visualization.update(draw=True, test_out_dir=show_dir)
    _check_device(cfg, launcher, cpu_dist, training=False)
    init_dist_for_launcher(cfg, launcher, cpu_dist)
    return Runner.from_cfg(cfg)


def parse_cfg_options(items: Optional[Sequence[str]]) -> Optional[dict]:
    """``key=value`` pairs (values as Python literals when they parse) -> dict for ``merge_from_dict``."""
    if not items:
        return None
    from mmengine.config import DictAction

    ns = argparse.Namespace()
    DictAction(option_strings=['--cfg-options'], dest='opts')(None, ns, list(items))
    return ns.opts
