"""N configs -> one leaderboard: train (or take a checkpoint), test, and tabulate metrics with bootstrap intervals,
the paired difference to the first config, size and speed. Locally one config after the other, or as one Slurm job
per config (``--launcher slurm``) whose work dirs ``--collect`` turns into the same leaderboard."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from typing import List, Optional, Sequence

from mammo_det.errors import UserError
from mammo_det.evaluation.keys import HEADLINE_FPPI, fppi_key, recall_column
from mammo_det.evaluation.report import write_leaderboard
from mammo_det.fileio import write_json, write_text

PLAN = 'benchmark.json'  # the configs of a benchmark, in leaderboard order (the first is the reference)


class BenchmarkError(UserError, RuntimeError):
    """A benchmark cannot be run or collected as asked; the message says why."""


def _count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _flops(model, shape) -> Optional[float]:
    """GFLOPs of one forward at ``shape`` (C, H, W) with mmengine's counter; None where it cannot trace."""
    import torch
    from mmengine.analysis import get_model_complexity_info
    from mmdet.structures import DetDataSample

    class _Tensor(torch.nn.Module):
        """The JIT tracer takes tensors only: hold the data samples and call the detector in 'tensor' mode."""

        def __init__(self, detector, samples):
            super().__init__()
            self.detector, self.samples = detector, samples

        def forward(self, inputs):
            return self.detector(inputs, self.samples, mode='tensor')

    h, w = shape[1:]
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), scale_factor=(1., 1.),
                                         batch_input_shape=(h, w)))
    try:
        model.eval()
        data = model.data_preprocessor(dict(inputs=[torch.rand(*shape) * 255], data_samples=[sample]), False)
        info = get_model_complexity_info(_Tensor(model, data['data_samples']), inputs=(data['inputs'],),
                                         show_table=False, show_arch=False)
        return info['flops'] / 1e9
    except (RuntimeError, TypeError, AttributeError, NotImplementedError, ValueError, IndexError) as exc:
        # Some heads do not trace in 'tensor' mode (DETR's dict outputs, dynamic shapes): the column then says '-',
        # and the log says why. Anything else (a bug, an interrupt) is not a tracing limit and propagates.
        warnings.warn(f'{type(model).__name__}: GFLOPs not counted ({type(exc).__name__}: {exc})'[:500], stacklevel=2)
        return None


def _model_stats(model, cfg) -> dict:
    scale = cfg.get('image_scale', (1333, 800))
    return dict(params_M=_count_params(model) / 1e6, GFLOPs=_flops(model, (3, scale[0], int(scale[0] * 0.8))))


# Leaderboard column -> key of metrics['birads'] (BI-RADS accuracy on matched boxes, the BI-RADS 4-5 AP).
BIRADS_COLUMNS = {'BI-RADS acc': 'accuracy', 'BI-RADS 4-5 AP': 'suspicious_AP'}
NO_BRANCH = 'no branch'  # what the BI-RADS columns say for a model whose predictions carry no BI-RADS


TRAINED, IMPORTED = 'trained here', 'imported'  # the source column: a config run by the benchmark, or predictions


def data_fingerprint(data_root: str) -> str:
    """The first 12 hex digits of the test annotation file's SHA-256: which data a row was scored on."""
    from mammo_det.interop.export import fingerprint

    return fingerprint(data_root).get('test', '')[:12]


def _row(name: str, metrics: dict, stats: dict, test_s: Optional[float], train_s: Optional[float],
         source: str = TRAINED, data: str = '') -> dict:
    birads = metrics.get('birads')
    return dict(config=name, source=source, data=data, mAP=metrics['mAP'], mAP50=metrics['mAP50'],
                **{f'AP {c}': v['AP'] for c, v in metrics['per_category'].items() if v['num_gt']},
                **{recall_column(): _mean([v['recall_at_fppi'][fppi_key(HEADLINE_FPPI)]
                                    for v in metrics['per_category'].values() if v['num_gt']])},
                **{col: birads[key] if birads else NO_BRANCH for col, key in BIRADS_COLUMNS.items()}, **stats,
                test_img_per_s=metrics['num_images'] / test_s if test_s else None, train_s=train_s)


def _plan_entries(configs: Sequence[str], work_dir: str, checkpoints: Optional[Sequence[str]]) -> List[dict]:
    if checkpoints and len(checkpoints) != len(configs):
        raise BenchmarkError(f'{len(checkpoints)} checkpoints for {len(configs)} configs')
    names = [os.path.splitext(os.path.basename(c))[0] for c in configs]
    if len(set(names)) != len(names):
        raise BenchmarkError(f'two configs share a file name (their work dirs would collide): {names}')
    return [dict(name=n, config=os.path.abspath(c), work_dir=os.path.join(os.path.abspath(work_dir), n),
                 checkpoint=os.path.abspath(checkpoints[k]) if checkpoints else None)
            for k, (n, c) in enumerate(zip(names, configs))]


def _write_plan(work_dir: str, entries: List[dict], data_root: str, cfg_options: Optional[dict], **extra) -> None:
    os.makedirs(work_dir, exist_ok=True)
    write_json(os.path.join(work_dir, PLAN), dict(data_root=os.path.abspath(data_root), cfg_options=cfg_options,
                                                  configs=entries, **extra), indent=2)


def _imported_entries(predictions: Optional[dict], work_dir: str, taken: Sequence[str]) -> List[dict]:
    entries = []
    for name, path in (predictions or {}).items():
        if name in taken or not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9._-]*', name):
            raise BenchmarkError(f'--predictions {name}=...: the name is taken by a config or not path-safe')
        if not os.path.isfile(path):
            raise BenchmarkError(f'--predictions {name}={path}: not found')
        entries.append(dict(name=name, config=None, predictions=os.path.abspath(path),
                            work_dir=os.path.join(os.path.abspath(work_dir), name), checkpoint=None))
    return entries


def _score_imported(entry: dict, data_root: str) -> dict:
    """Scores an imported predictions file as the metric scores a model: ``preds.json`` (validated) and
    ``eval/metrics.json`` in its work dir, for the leaderboard's intervals."""
    from mammo_det.evaluation import evaluate, load_json, validate_detections
    from mammo_det.evaluation.report import write_outputs

    gt = load_json(os.path.join(data_root, 'annotations', 'instances_test.json'), 'ground truth')
    dets = validate_detections(load_json(entry['predictions'], 'predictions'), gt, entry['predictions'])
    write_json(os.path.join(entry['work_dir'], 'preds.json'), dets)
    metrics = evaluate(gt, dets, curves=True)
    write_outputs(metrics, os.path.join(entry['work_dir'], 'eval'))
    return _load(os.path.join(entry['work_dir'], 'eval', 'metrics.json'))


def benchmark(configs: Sequence[str], data_root: str, work_dir: str, checkpoints: Optional[Sequence[str]] = None,
              cfg_options: Optional[dict] = None, bootstrap: int = 1000, seed: int = 0,
              ci: float = 0.95, predictions: Optional[dict] = None) -> List[dict]:
    """Trains (unless checkpoints are given) and tests each config here, and scores each predictions file
    (``predictions``: name -> COCO results on the test split, e.g. ``mammo-det import-preds``' output) on the same
    ground truth; writes leaderboard.{md,csv,png}. The first row is the reference of the paired differences."""
    from mammo_det.apis.runner import build_test_runner, build_train_runner

    entries = _plan_entries(configs, work_dir, checkpoints)
    imported = _imported_entries(predictions, work_dir, [e['name'] for e in entries])
    if not entries and not imported:
        raise BenchmarkError('nothing to benchmark: give configs, --predictions NAME=FILE, or both')
    _write_plan(work_dir, entries + imported, data_root, cfg_options, launcher='none')
    data = data_fingerprint(data_root)
    rows = []
    for k, e in enumerate(entries):
        wd = e['work_dir']
        print(f"\n==> [{k + 1}/{len(entries)}] {e['name']}", flush=True)
        train_s = None
        ckpt = e['checkpoint']
        if ckpt is None:
            t = time.time()
            runner = build_train_runner(e['config'], work_dir=wd, data_root=data_root, cfg_options=cfg_options)
            runner.train()
            train_s = time.time() - t
            with open(os.path.join(wd, 'last_checkpoint')) as fh:
                ckpt = fh.read().strip()
        runner = build_test_runner(e['config'], ckpt, work_dir=wd, out=os.path.join(wd, 'preds.json'),
                                   report_dir=os.path.join(wd, 'eval'), data_root=data_root, cfg_options=cfg_options)
        t = time.time()
        runner.test()
        test_s = time.time() - t
        metrics = _load(os.path.join(wd, 'eval', 'metrics.json'))
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        rows.append(_row(e['name'], metrics, _model_stats(model, runner.cfg), test_s, train_s, TRAINED, data))
    for e in imported:
        print(f"\n==> {e['name']}: {e['predictions']}", flush=True)
        rows.append(_row(e['name'], _score_imported(e, data_root), dict(params_M=None, GFLOPs=None), None, None,
                         IMPORTED, data))
    add_intervals(rows, entries + imported, data_root, bootstrap, seed, ci)
    write_leaderboard(rows, work_dir)
    return rows


def _load(path: str):
    with open(path) as fh:
        return json.load(fh)


def _mean(v):
    return sum(v) / len(v) if v else None


def add_intervals(rows: List[dict], entries: List[dict], data_root: str, bootstrap: int, seed: int,
                  ci: float) -> None:
    """Adds ``<col>_lo``/``<col>_hi`` for mAP, mAP50, each AP and the BI-RADS columns, and the paired difference
    of mAP to the first config (``dmAP``, ``dmAP_lo``, ``dmAP_hi``, ``dmAP_p``), from the test predictions on the
    same resamples."""
    from mammo_det.evaluation import compare, evaluate, validate_detections

    if not bootstrap or not rows:
        return
    gt_path = os.path.join(data_root, 'annotations', 'instances_test.json')
    full = _load(gt_path)
    by_name = {e['name']: e for e in entries}
    gts, preds = [], []
    for r in rows:
        wd = by_name[r['config']]['work_dir']
        # The metric evaluated the model on its own classes (those in its metrics.json): the same here.
        names = set(_load(os.path.join(wd, 'eval', 'metrics.json'))['per_category'])
        cats = [c for c in full['categories'] if c['name'] in names]
        ids = {c['id'] for c in cats}
        gts.append(dict(full, categories=cats, annotations=[a for a in full['annotations'] if a['category_id'] in ids]))
        path = os.path.join(wd, 'preds.json')
        preds.append([d for d in validate_detections(_load(path), full, path) if d['category_id'] in ids])
    same = all(g['categories'] == gts[0]['categories'] for g in gts)
    if len(rows) > 1 and same:
        res = compare(gts[0], preds, [r['config'] for r in rows], bootstrap=bootstrap, ci=ci, seed=seed)
        models = res['models']
        for r in rows[1:]:
            d = res['differences'][r['config']]['mAP']
            r.update(dmAP=d['delta'], dmAP_lo=d['ci'][0] if d['ci'] else None,
                     dmAP_hi=d['ci'][1] if d['ci'] else None, dmAP_p=d['p'])
    else:  # one config, or configs with different classes: intervals without a paired difference
        models = {r['config']: evaluate(g, p, bootstrap=bootstrap, ci=ci, seed=seed)
                  for r, g, p in zip(rows, gts, preds)}
    for r in rows:
        block = models[r['config']]['ci']
        birads = block.get('birads') or {}
        for col, bounds in [('mAP', block['mAP']), ('mAP50', block['mAP50'])] + [
                (f'AP {c}', v['AP']) for c, v in block['per_category'].items() if f'AP {c}' in r] + [
                (col, birads.get(key)) for col, key in BIRADS_COLUMNS.items() if r[col] != NO_BRANCH]:
            r[f'{col}_lo'], r[f'{col}_hi'] = bounds if bounds else (None, None)
        r['bootstrap'] = f'{bootstrap} study resamples, seed {seed}, {ci:.0%}'


# --- Slurm -------------------------------------------------------------------------------------------------------

@dataclass
class SlurmOptions:
    partition: str
    gpus: int = 8
    gpus_per_node: int = 8
    cpus_per_task: int = 5
    time: str = '24:00:00'
    sbatch_args: Sequence[str] = ()


def _tools_dir() -> str:
    tools = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'tools')
    if not os.path.exists(os.path.join(tools, 'slurm_train.sh')):
        raise BenchmarkError(f'{tools}/slurm_train.sh not found: --launcher slurm runs from a checkout of mammo-det')
    return tools


def job_script(entry: dict, data_root: str, cfg_options: Optional[dict], opts: SlurmOptions) -> str:
    """The batch script of one config: train through tools/slurm_train.sh (unless a checkpoint is given), then
    test through tools/slurm_test.sh into the work dir (preds.json, eval/), with the seconds each took."""
    tools = _tools_dir()
    q = shlex.quote
    nodes = -(-opts.gpus // opts.gpus_per_node)
    wd = entry['work_dir']
    cfg_args = ''
    if cfg_options:
        cfg_args = ' --cfg-options ' + ' '.join(q(f'{k}={v!r}' if isinstance(v, str) else f'{k}={v}')
                                                for k, v in cfg_options.items())
    env = (f'GPUS={opts.gpus} GPUS_PER_NODE={opts.gpus_per_node} CPUS_PER_TASK={opts.cpus_per_task} '
           f'PYTHON={q(sys.executable)}')
    lines = ['#!/usr/bin/env bash',
             f"#SBATCH --job-name=mammo-det-{entry['name']}",
             f'#SBATCH --partition={opts.partition}',
             f'#SBATCH --nodes={nodes}',
             f'#SBATCH --ntasks={opts.gpus}',
             f'#SBATCH --ntasks-per-node={opts.gpus_per_node}',
             f'#SBATCH --gres=gpu:{opts.gpus_per_node}',
             f'#SBATCH --cpus-per-task={opts.cpus_per_task}',
             f'#SBATCH --time={opts.time}',
             f'#SBATCH --output={wd}/slurm-%j.out',
             'set -euo pipefail',
             f'cd {q(os.getcwd())}',
             't0=$(date +%s)']
    if entry['checkpoint'] is None:
        lines += [f"{env} bash {q(tools + '/slurm_train.sh')} {q(opts.partition)} {q(entry['name'])} "
                  f"{q(entry['config'])} {q(wd)} --data-root {q(data_root)}{cfg_args}",
                  f'ckpt=$(cat {q(wd + "/last_checkpoint")})']
    else:
        lines.append(f"ckpt={q(entry['checkpoint'])}")
    lines += ['t1=$(date +%s)',
              f"{env} bash {q(tools + '/slurm_test.sh')} {q(opts.partition)} {q(entry['name'])} {q(entry['config'])} "
              f'"$ckpt" --work-dir {q(wd)} --data-root {q(data_root)} --out {q(wd + "/preds.json")} '
              f'--report-dir {q(wd + "/eval")}{cfg_args}',
              't2=$(date +%s)',
              f'echo "{{\\"train_s\\": $((t1 - t0)), \\"test_s\\": $((t2 - t1))}}" > {q(wd + "/timings.json")}']
    if entry['checkpoint'] is not None:
        lines[-1] = f'echo "{{\\"train_s\\": null, \\"test_s\\": $((t2 - t1))}}" > {q(wd + "/timings.json")}'
    return '\n'.join(lines) + '\n'


def submit_slurm(configs: Sequence[str], data_root: str, work_dir: str, opts: SlurmOptions,
                 checkpoints: Optional[Sequence[str]] = None, cfg_options: Optional[dict] = None) -> List[dict]:
    """Writes one batch script per config and submits it with ``sbatch``; returns the entries with job ids."""
    entries = _plan_entries(configs, work_dir, checkpoints)
    for e in entries:
        os.makedirs(e['work_dir'], exist_ok=True)
        script = os.path.join(e['work_dir'], 'job.sh')
        write_text(script, job_script(e, os.path.abspath(data_root), cfg_options, opts))
        cmd = ['sbatch', *opts.sbatch_args, script]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise BenchmarkError('sbatch not found: --launcher slurm needs a Slurm login node') from None
        if p.returncode != 0:
            raise BenchmarkError(f"sbatch failed for {e['name']} ({p.returncode}): {p.stderr.strip()}")
        m = re.search(r'(\d+)', p.stdout)
        e['job_id'] = m.group(1) if m else p.stdout.strip()
        e['script'] = script
        print(f"submitted {e['name']}: job {e['job_id']} ({script})", flush=True)
    _write_plan(work_dir, entries, data_root, cfg_options, launcher='slurm',
                slurm=dict(partition=opts.partition, gpus=opts.gpus, gpus_per_node=opts.gpus_per_node,
                           time=opts.time))
    return entries


def collect(work_dir: str, bootstrap: int = 1000, seed: int = 0, ci: float = 0.95) -> tuple:
    """The leaderboard of the finished jobs of a benchmark (its ``benchmark.json``): (rows, missing names)."""
    from mammo_det.apis.runner import load_config

    plan_path = os.path.join(work_dir, PLAN)
    if not os.path.exists(plan_path):
        raise BenchmarkError(f'{plan_path} not found: not a benchmark work dir')
    plan = _load(plan_path)
    rows, done, missing = [], [], []
    for e in plan['configs']:
        wd = e['work_dir']
        needed = [os.path.join(wd, 'preds.json'), os.path.join(wd, 'eval', 'metrics.json')]
        if not all(os.path.exists(p) for p in needed):
            missing.append(e['name'] + (f" (job {e['job_id']})" if e.get('job_id') else ''))
            continue
        metrics = _load(needed[1])
        timings = _load(os.path.join(wd, 'timings.json')) if os.path.exists(os.path.join(wd, 'timings.json')) else {}
        cfg = load_config(e['config'], wd, plan.get('cfg_options'), plan['data_root'])
        rows.append(_row(e['name'], metrics, _stats_from_config(cfg), timings.get('test_s'), timings.get('train_s'),
                         TRAINED, data_fingerprint(plan['data_root'])))
        done.append(e)
    if not rows:
        raise BenchmarkError(f"no job of {work_dir} has finished yet: missing {', '.join(missing)}")
    add_intervals(rows, done, plan['data_root'], bootstrap, seed, ci)
    write_leaderboard(rows, work_dir, missing)
    return rows, missing


def _stats_from_config(cfg) -> dict:
    """Parameters and GFLOPs of a config's model, built on the CPU without weights."""
    import mammo_det.registry  # noqa: F401  (registers the mammo-det modules)
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS

    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return _model_stats(MODELS.build(cfg.model), cfg)
