"""The whole pipeline on synthetic data: synth -> convert -> train -> test -> evaluate -> report.md."""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Optional

from mammo_det.fileio import atomic_path, write_text

DEMO_CONFIG = 'demo/faster-rcnn_r18-w16_fpn_birads_1xb4-24e_synth-mammo.py'  # in the shipped configs


def _examples(coco_dir: str, preds_file: str, out_dir: str, n: int = 4) -> list:
    """Draws predictions (red) and ground truth (green) on the test mammograms with the most findings."""
    import cv2
    import numpy as np

    from mammo_det.apis.inference import draw_detections

    gt = json.load(open(os.path.join(coco_dir, 'annotations', 'instances_test.json')))
    dets = json.load(open(preds_file))
    names = {c['id']: c['name'] for c in gt['categories']}
    by_img = {}
    for a in gt['annotations']:
        by_img.setdefault(a['image_id'], []).append(a)
    chosen = sorted(by_img, key=lambda i: -len(by_img[i]))[:n]
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for img_id in chosen:
        im = next(x for x in gt['images'] if x['id'] == img_id)
        img = cv2.imread(os.path.join(coco_dir, 'images', im['file_name']), cv2.IMREAD_UNCHANGED)
        d = sorted((x for x in dets if x['image_id'] == img_id and x['score'] >= 0.3), key=lambda x: -x['score'])[:5]
        xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in (e['bbox'] for e in d)]).reshape(-1, 4)
        gt_xyxy = [[x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in by_img[img_id])]
        overlay = draw_detections(img, xyxy, [names[e['category_id']] for e in d], [e['score'] for e in d],
                                  [e.get('birads') for e in d] if d and 'birads' in d[0] else None,
                                  gt_boxes=gt_xyxy)
        path = os.path.join(out_dir, f"{im['source_id'][:8]}.png")
        cv2.imwrite(path, overlay)
        paths.append(path)
    return paths


def write_report(out: str, metrics: dict, examples: list, timings: dict, command: str) -> str:
    """report.md: the per-finding table, FROC/PR plots, BI-RADS agreement and example predictions."""
    from mammo_det.evaluation.report import format_rows, per_category_rows, summary_lines

    rel = lambda p: os.path.relpath(p, out)  # noqa: E731
    lines = ['# mammo-det demo report', '',
             f'Synthetic VinDr-Mammo-format data (no patient data); produced by `{command}`.', '',
             f"Test split: {metrics['num_images']} images. mAP {metrics['mAP']:.3f}, mAP50 {metrics['mAP50']:.3f}, "
             f"mAP75 {metrics['mAP75']:.3f} (COCO, maxDets 100; recall at FPPI at IoU {metrics['froc_iou']}).", '',
             format_rows(per_category_rows(metrics))]
    lines += [line for s in summary_lines(metrics, digits=3) for line in ('', s[0].upper() + s[1:] + '.')]
    lines += ['', '## Curves', '', '![FROC](eval/froc.png) ![PR](eval/pr_curves.png)']
    if os.path.exists(os.path.join(out, 'eval', 'birads_confusion.png')):
        lines += ['', '![BI-RADS confusion](eval/birads_confusion.png)']
    lines += ['', '## Predictions (red, score >= 0.3) and ground truth (green)', '']
    lines += [f'![{os.path.basename(p)}]({rel(p)})' for p in examples]
    lines += ['', '## Timings', '', format_rows([dict(stage=k, seconds=v) for k, v in timings.items()], digits=1)]
    lines += ['', f'Checkpoint `model.pth` and config `config.py` are in this folder: '
                  f'`mammo-det infer {rel(os.path.join(out, "config.py"))} ... `.', '']
    path = os.path.join(out, 'report.md')
    write_text(path, '\n'.join(lines))
    return path


def _convert(raw: str, coco: str, config: str, workers: int) -> None:
    """Converts the release as the demo config expects it (its classes and ``mammo_preprocess``)."""
    from mmengine.config import Config

    from data_converters.core import ConvertOptions
    from data_converters.formats import convert

    cfg = Config.fromfile(config)
    pre = cfg.mammo_preprocess
    report = convert(raw, coco, ConvertOptions(max_size=pre['max_size'], bit_depth=pre['bit_depth'], crop=pre['crop'],
                                               voi=pre['voi'], classes=list(cfg.classes), val_fraction=0.15,
                                               workers=workers), 'vindr')
    for split, s in report['splits'].items():
        print(f"  {split}: {s['images']} images, {s['positive_images']} with findings, {s['annotations']} boxes")


def _train(config: str, coco: str, work: str, epochs: int, seed: int, ckpt: str, config_out: str) -> None:
    """Trains (resuming a killed run) for ``epochs`` from ``seed``; keeps the final weights and the resolved
    config."""
    from mammo_det.apis.runner import build_train_runner, load_config, set_max_epochs

    cfg = load_config(config, work_dir=work, data_root=coco)
    set_max_epochs(cfg, epochs)
    cfg.randomness.seed = seed
    cfg.default_hooks.checkpoint.interval = epochs
    cfg.train_cfg.val_interval = epochs + 1  # no validation: the test split is evaluated once, after training
    runner = build_train_runner(cfg, work_dir=work, resume=os.path.exists(os.path.join(work, 'last_checkpoint')))
    runner.train()
    with atomic_path(ckpt) as tmp:
        shutil.copyfile(os.path.join(work, f'epoch_{epochs}.pth'), tmp)
    runner.cfg.dump(config_out)


def run_demo(out: str = 'work_dirs/demo', studies: int = 60, scale: float = 0.15, epochs: Optional[int] = None,
             seed: int = 0, workers: int = 0, distractors: float = 0.0) -> dict:
    """Runs the demo end to end into ``out``; returns the test metrics. Reruns reuse what is already there.

    Args:
        epochs: None: the demo config's ``max_epochs``.
        seed: of the synthetic release and of the training.
        distractors: mean number of lesion-like blobs per image, unannotated and in one view only.
    """
    from data_converters.synth.vindr import write_dataset
    from mammo_det.apis.configs import find_config
    from mammo_det.apis.runner import build_test_runner
    from mammo_det.evaluation import load_json

    out = os.path.abspath(out)
    raw, coco, work, eval_dir = (os.path.join(out, d) for d in ('raw', 'coco', 'work', 'eval'))
    ckpt, config_out, preds = (os.path.join(out, f) for f in ('model.pth', 'config.py', 'preds.json'))
    config = find_config(DEMO_CONFIG)
    if epochs is None:
        from mmengine.config import Config

        epochs = Config.fromfile(config).max_epochs
    command = f'mammo-det demo --out {out} --studies {studies} --scale {scale} --epochs {epochs} --seed {seed}'
    timings = {}

    def stage(name: str, message: str, fn, *args) -> None:
        print(f'\n==> {message}', flush=True)
        t = time.time()
        fn(*args)
        timings[name] = time.time() - t

    stage('synth', f'1/5 synthetic VinDr-Mammo release: {studies} studies -> {raw}', write_dataset, raw, studies,
          seed, scale, max(workers, 1), 0.6, True, distractors)
    stage('convert', f'2/5 convert to COCO -> {coco}', _convert, raw, coco, config, workers)
    if os.path.exists(ckpt):
        timings['train'] = 0.0
    else:
        stage('train', f'3/5 train {os.path.basename(config)} for {epochs} epochs -> {work}', _train, config, coco,
              work, epochs, seed, ckpt, config_out)
    stage('test + evaluate', '4/5 test on the test split and evaluate',
          lambda: build_test_runner(config_out, ckpt, work_dir=work, out=preds, report_dir=eval_dir,
                                    data_root=coco).test())
    metrics = load_json(os.path.join(eval_dir, 'metrics.json'), 'metrics')

    print('\n==> 5/5 report', flush=True)
    examples = _examples(coco, preds, os.path.join(out, 'examples'))
    path = write_report(out, metrics, examples, timings, command)
    print(f'\nreport: {path}')
    return metrics
