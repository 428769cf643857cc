"""The whole pipeline on synthetic data: synth -> convert -> train -> test -> evaluate -> report.md."""
from __future__ import annotations

import json
import os
import shutil
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_CONFIG = os.path.join(REPO, 'configs', 'demo', 'faster-rcnn_r18-w16_fpn_birads_1xb4-12e_synth-mammo.py')


def _stage(msg: str) -> None:
    print(f'\n==> {msg}', flush=True)


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
    from mammo_det.evaluation.metrics import per_category_rows

    rel = lambda p: os.path.relpath(p, out)  # noqa: E731
    rows = per_category_rows(metrics)
    cols = list(rows[0])
    fmt = lambda v: '-' if v is None else f'{v:.3f}' if isinstance(v, float) else str(v)  # noqa: E731
    lines = ['# mammo-det demo report', '',
             f'Synthetic VinDr-Mammo-format data (no patient data); produced by `{command}`.', '',
             f"Test split: {metrics['num_images']} images. mAP {metrics['mAP']:.3f}, mAP50 {metrics['mAP50']:.3f}, "
             f"mAP75 {metrics['mAP75']:.3f} (COCO, maxDets 100; recall at FPPI at IoU {metrics['froc_iou']}).", '',
             '| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
    lines += ['| ' + ' | '.join(fmt(r[c]) for c in cols) + ' |' for r in rows]
    b = metrics.get('birads')
    if b and b.get('accuracy') is not None:
        lines += ['', f"BI-RADS on {b['matched']} detections matched to a box with a BI-RADS: accuracy "
                      f"{b['accuracy']:.3f} (majority-class baseline {b['majority_baseline']:.3f}); "
                      f"suspicious (BI-RADS 4-5) class-agnostic AP50 {fmt(b['suspicious_AP50'])}."]
    br = metrics.get('breast')
    if br:
        lines += ['', f"Breast level ({br['num_breasts']} breasts): AUC for BI-RADS >= 4 {fmt(br['auc_birads_ge4'])}, "
                      f">= 3 {fmt(br['auc_birads_ge3'])}."]
    lines += ['', '## Curves', '', '![FROC](eval/froc.png) ![PR](eval/pr_curves.png)']
    if os.path.exists(os.path.join(out, 'eval', 'birads_confusion.png')):
        lines += ['', '![BI-RADS confusion](eval/birads_confusion.png)']
    lines += ['', '## Predictions (red, score >= 0.3) and ground truth (green)', '']
    lines += [f'![{os.path.basename(p)}]({rel(p)})' for p in examples]
    lines += ['', '## Timings', '', '| stage | seconds |', '|---|---|']
    lines += [f'| {k} | {v:.1f} |' for k, v in timings.items()]
    lines += ['', f'Checkpoint `model.pth` and config `config.py` are in this folder: '
                  f'`mammo-det infer {rel(os.path.join(out, "config.py"))} ... `.', '']
    path = os.path.join(out, 'report.md')
    with open(path + '.tmp', 'w') as fh:
        fh.write('\n'.join(lines))
    os.replace(path + '.tmp', path)
    return path


def run_demo(out: str = 'work_dirs/demo', studies: int = 60, scale: float = 0.15, epochs: int = 12,
             seed: int = 0, workers: int = 0) -> dict:
    """Runs the demo end to end into ``out``; returns the test metrics. Reruns reuse what is already there."""
    from data_converters.synth import write_dataset
    from data_converters.vindr_mammo import ConvertOptions, convert
    from mammo_det.apis.runner import build_test_runner, build_train_runner
    from mammo_det.evaluation import load_json

    out = os.path.abspath(out)
    raw, coco, work = (os.path.join(out, d) for d in ('raw', 'coco', 'work'))
    timings = {}
    command = f'mammo-det demo --out {out} --studies {studies} --scale {scale} --epochs {epochs}'

    t = time.time()
    _stage(f'1/5 synthetic VinDr-Mammo release: {studies} studies -> {raw}')
    write_dataset(raw, studies=studies, seed=seed, scale=scale, positive_rate=0.6, workers=max(workers, 1))
    timings['synth'] = time.time() - t

    t = time.time()
    _stage(f'2/5 convert to COCO -> {coco}')
    from mmengine.config import Config
    demo_cfg = Config.fromfile(DEMO_CONFIG)
    pre = demo_cfg.mammo_preprocess
    report = convert(raw, coco, ConvertOptions(max_size=pre['max_size'], bit_depth=pre['bit_depth'],
                                               crop=pre['crop'], voi=pre['voi'], classes=list(demo_cfg.classes),
                                               val_fraction=0.15, workers=workers))
    for split, s in report['splits'].items():
        print(f"  {split}: {s['images']} images, {s['positive_images']} with findings, {s['annotations']} boxes")
    timings['convert'] = time.time() - t

    t = time.time()
    _stage(f'3/5 train {os.path.basename(DEMO_CONFIG)} for {epochs} epochs -> {work}')
    ckpt = os.path.join(out, 'model.pth')
    opts = {'train_cfg.max_epochs': epochs, 'default_hooks.checkpoint.interval': epochs,
            'param_scheduler.1.T_max': epochs, 'param_scheduler.1.end': epochs,
            'train_cfg.val_interval': epochs + 1}
    if not os.path.exists(ckpt):
        runner = build_train_runner(DEMO_CONFIG, work_dir=work, data_root=coco, cfg_options=opts,
                                    resume=os.path.exists(os.path.join(work, 'last_checkpoint')))
        runner.train()
        shutil.copyfile(os.path.join(work, f'epoch_{epochs}.pth'), ckpt + '.tmp')
        os.replace(ckpt + '.tmp', ckpt)
        runner.cfg.dump(os.path.join(out, 'config.py'))
    timings['train'] = time.time() - t

    t = time.time()
    _stage('4/5 test on the test split and evaluate')
    preds = os.path.join(out, 'preds.json')
    runner = build_test_runner(os.path.join(out, 'config.py'), ckpt, work_dir=work, out=preds, data_root=coco)
    runner.test()
    os.makedirs(os.path.join(out, 'eval'), exist_ok=True)
    for name in os.listdir(os.path.join(out, 'preds_eval')):  # the metric's report files
        os.replace(os.path.join(out, 'preds_eval', name), os.path.join(out, 'eval', name))
    os.rmdir(os.path.join(out, 'preds_eval'))
    metrics = load_json(os.path.join(out, 'eval', 'metrics.json'), 'metrics')
    timings['test + evaluate'] = time.time() - t

    _stage('5/5 report')
    examples = _examples(coco, preds, os.path.join(out, 'examples'))
    path = write_report(out, metrics, examples, timings, command)
    print(f'\nreport: {path}')
    return metrics
