"""N configs -> one leaderboard: train (or take a checkpoint), test, and tabulate metrics, size and speed."""
from __future__ import annotations

import json
import os
import time
from typing import List, Optional, Sequence

from mammo_det.evaluation.metrics import HEADLINE_FPPI, fppi_key
from mammo_det.fileio import atomic_path, write_csv, write_text
from mammo_det.tables import format_rows

HEADLINE = f'R@{HEADLINE_FPPI:g}FPPI'


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
    except Exception:  # some heads do not trace in 'tensor' mode; the column then says '-'
        return None


def benchmark(configs: Sequence[str], data_root: str, work_dir: str, checkpoints: Optional[Sequence[str]] = None,
              cfg_options: Optional[dict] = None) -> List[dict]:
    """Trains (unless checkpoints are given) and tests each config; writes leaderboard.{md,csv,png} to work_dir."""
    from mammo_det.apis.runner import build_test_runner, build_train_runner

    if checkpoints and len(checkpoints) != len(configs):
        raise ValueError(f'{len(checkpoints)} checkpoints for {len(configs)} configs')
    os.makedirs(work_dir, exist_ok=True)
    rows = []
    for k, config in enumerate(configs):
        name = os.path.splitext(os.path.basename(config))[0]
        wd = os.path.join(work_dir, name)
        print(f'\n==> [{k + 1}/{len(configs)}] {name}', flush=True)
        train_s = None
        if checkpoints:
            ckpt = checkpoints[k]
        else:
            t = time.time()
            runner = build_train_runner(config, work_dir=wd, data_root=data_root, cfg_options=cfg_options)
            runner.train()
            train_s = time.time() - t
            with open(os.path.join(wd, 'last_checkpoint')) as fh:
                ckpt = fh.read().strip()
        preds, report_dir = os.path.join(wd, 'preds.json'), os.path.join(wd, 'eval')
        runner = build_test_runner(config, ckpt, work_dir=wd, out=preds, report_dir=report_dir, data_root=data_root,
                                   cfg_options=cfg_options)
        t = time.time()
        runner.test()
        test_s = time.time() - t
        with open(os.path.join(report_dir, 'metrics.json')) as fh:
            metrics = json.load(fh)
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        scale = runner.cfg.get('image_scale', (1333, 800))
        row = dict(config=name, mAP=metrics['mAP'], mAP50=metrics['mAP50'],
                   **{f'AP {c}': v['AP'] for c, v in metrics['per_category'].items() if v['num_gt']},
                   **{HEADLINE: _mean([v['recall_at_fppi'][fppi_key(HEADLINE_FPPI)]
                                       for v in metrics['per_category'].values() if v['num_gt']])},
                   birads_acc=(metrics.get('birads') or {}).get('accuracy'),
                   params_M=_count_params(model) / 1e6, GFLOPs=_flops(model, (3, scale[0], int(scale[0] * 0.8))),
                   test_img_per_s=metrics['num_images'] / test_s, train_s=train_s)
        rows.append(row)
    write_leaderboard(rows, work_dir)
    return rows


def _mean(v):
    return sum(v) / len(v) if v else None


def write_leaderboard(rows: List[dict], out_dir: str) -> dict:
    """leaderboard.md, leaderboard.csv and leaderboard.png (mAP and recall at 0.5 FPPI per config)."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    paths = {k: os.path.join(out_dir, f'leaderboard.{k}') for k in ('md', 'csv', 'png')}
    ranked = sorted(({c: r.get(c) for c in cols} for r in rows), key=lambda r: -(r['mAP'] or 0))
    write_text(paths['md'], format_rows(ranked, cols) + '\n')
    write_csv(paths['csv'], rows, cols)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(rows)), 4))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r['mAP'] or 0 for r in rows], 0.4, label='mAP')
    ax.bar(x + 0.2, [r[HEADLINE] or 0 for r in rows], 0.4, label=f'recall at {HEADLINE_FPPI:g} FPPI')
    ax.set_xticks(x, [r['config'][:28] for r in rows], rotation=15, fontsize=7)
    ax.set(ylim=(0, 1), title='mammo-det leaderboard')
    ax.legend()
    with atomic_path(paths['png']) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches='tight')
    plt.close(fig)
    return paths
