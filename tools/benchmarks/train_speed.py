"""Training throughput, side by side in one run: the data loaders (old float pipeline against the lean one, 8- and
16-bit PNGs, 1 and N workers, bytes per sample) and, with a GPU, every shipped config's training step (fp32 and AMP,
images/s and peak memory) and the data-time share of a real tools/train.py epoch.

    python tools/benchmarks/train_speed.py [--images 32] [--scale 2048] [--workers 2] [--steps 10] [--warmup 3]

Synthetic data at the real sizes (3518 x 2800 ...) converted to PNGs at --scale, so nothing credentialed is needed.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, REPO)


def loader_rate(data_root: str, scale: int, n: int, workers: int, float_rgb: bool) -> tuple:
    """(images/s per worker, bytes per sample) of a DataLoader running the training pipeline on ``n`` images."""
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from torch.utils.data import DataLoader, Subset

    import mammo_det.registry  # noqa: F401
    from mammo_det.datasets import MammoDataset

    init_default_scope('mmdet')
    pipeline = [dict(type='LoadMammogram', float_rgb=float_rgb), dict(type='LoadBiradsAnnotations', with_bbox=True),
                dict(type='Resize', scale=(scale, scale), keep_ratio=True),
                dict(type='RandomFlip', prob=0.5, direction='horizontal'), dict(type='PackMammoInputs')]
    ds = MammoDataset(data_root=data_root, ann_file='annotations/instances_train.json',
                           data_prefix=dict(img='images/'), pipeline=pipeline)
    ds = Subset(ds, [i % len(ds) for i in range(n)])  # the training split is smaller than n: images repeat
    loader = DataLoader(ds, batch_size=1, num_workers=workers, collate_fn=pseudo_collate,
                        persistent_workers=False, prefetch_factor=4 if workers else None)
    it = iter(loader)
    first = next(it)  # worker start-up is not what this measures
    sizes = [first['inputs'][0].numel() * first['inputs'][0].element_size()]
    start = time.perf_counter()
    for batch in it:
        sizes.append(batch['inputs'][0].numel() * batch['inputs'][0].element_size())
    rate = (len(sizes) - 1) / (time.perf_counter() - start)
    return rate / max(workers, 1), float(np.mean(sizes))


def _batch(h: int, w: int, device: str) -> dict:
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    samples = []
    for _ in range(2):
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), scale_factor=(1., 1.)))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[300., 400., 600., 700.], [900., 200., 1100., 450.]]),
                                      labels=torch.tensor([0, 1]), birads=torch.tensor([4, 3]))
        samples.append(s)
    return dict(inputs=[torch.randint(0, 256, (1, h, w), dtype=torch.uint8) for _ in range(2)], data_samples=samples)


def step_rate(config: str, scale: int, steps: int, warmup: int, amp: bool, device: str) -> dict:
    """Images/s of ``model.train_step`` (2 images a step) after ``warmup`` steps, and peak memory on CUDA."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import mammo_det.registry  # noqa: F401
    from mammo_det.apis.runner import set_model_classes
    from mammo_det.zoo import expand_wrapped

    register_all_modules()
    cfg = Config.fromfile(config)
    set_model_classes(cfg)
    expand_wrapped(cfg.model).backbone.init_cfg = None  # speed does not depend on the ImageNet weights
    model = MODELS.build(cfg.model).to(device).train()
    wrapper = dict(cfg.optim_wrapper, type='AmpOptimWrapper' if amp else 'OptimWrapper')
    if amp:
        wrapper.setdefault('loss_scale', 'dynamic')
    else:
        wrapper.pop('loss_scale', None)
    optim = build_optim_wrapper(model, wrapper)
    data = _batch(scale, int(scale * 0.8), device)
    for _ in range(warmup):
        model.train_step(data, optim)
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        model.train_step(data, optim)
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    out = dict(img_per_s=2 * steps / (time.perf_counter() - start))
    if device.startswith('cuda'):
        out.update(peak_allocated_gib=torch.cuda.max_memory_allocated() / 2**30,
                   peak_reserved_gib=torch.cuda.max_memory_reserved() / 2**30)
    del model, optim
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
    return out


def data_time_share(config: str, data_root: str, work: str, scale: int) -> float:
    """Share of data time in the iteration time of one real tools/train.py epoch (logged every iteration)."""
    cmd = [sys.executable, os.path.join(REPO, 'tools/train.py'), config, '--data-root', data_root, '--work-dir', work,
           '--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=100', 'default_hooks.logger.interval=1',
           'default_hooks.checkpoint.interval=100', f'train_dataloader.dataset.pipeline.2.scale=({scale},{scale})',
           'model.backbone.init_cfg=None']  # no ImageNet download on a GPU node without internet
    subprocess.run(cmd, check=True, cwd=REPO, capture_output=True)
    rows = [json.loads(line) for line in open(glob.glob(os.path.join(work, '*', 'vis_data', 'scalars.json'))[0])]
    rows = [r for r in rows if 'data_time' in r][1:]  # the first iteration starts the workers
    return float(sum(r['data_time'] for r in rows) / max(sum(r['time'] for r in rows), 1e-9))


def _loaders(roots: dict, args) -> dict:
    """Old (float RGB) against lean (one channel, stored depth) loaders: images/s per worker and bytes a sample."""
    out = {}
    print(f'loaders at long side {args.scale}, {args.images} images (images/s per worker; MB per sample):')
    for bits in (8, 16):
        for workers in (1, args.workers):
            row = {name: loader_rate(roots[bits], args.scale, args.images, workers, float_rgb)
                   for name, float_rgb in (('old', True), ('lean', False))}
            out[f'{bits}bit_{workers}w'] = {k: dict(img_per_s_per_worker=v[0], bytes=v[1]) for k, v in row.items()}
            (o_rate, o_bytes), (n_rate, n_bytes) = row['old'], row['lean']
            print(f'  {bits:2d}-bit, {workers} worker(s): old {o_rate:5.1f} img/s, {o_bytes / 1e6:5.1f} MB | '
                  f'lean {n_rate:5.1f} img/s, {n_bytes / 1e6:5.1f} MB | speed-up {n_rate / o_rate:.2f}x, '
                  f'bytes {n_bytes / o_bytes:.3f}x')
    return out


def _gpu_steps(roots: dict, tmp: str, args) -> dict:
    """Each shipped config's fp32 and AMP training step on the GPU, then one epoch's data-time share."""
    from mammo_det.apis.configs import list_configs, package_configs_dir

    out = {}
    print(f'GPU {torch.cuda.get_device_name(0)}: training step, 2 images at long side {args.scale}, after '
          f'{args.warmup} warm-up steps:')
    for name in list_configs():
        if name.startswith('demo'):
            continue
        config = os.path.join(package_configs_dir(), name)
        row = {mode: step_rate(config, args.scale, args.steps, args.warmup, mode == 'amp', 'cuda')
               for mode in ('fp32', 'amp')}
        out[name] = row
        print(f"  {name}: fp32 {row['fp32']['img_per_s']:.1f} img/s, peak "
              f"{row['fp32']['peak_allocated_gib']:.1f}/{row['fp32']['peak_reserved_gib']:.1f} GiB | AMP "
              f"{row['amp']['img_per_s']:.1f} img/s, peak {row['amp']['peak_allocated_gib']:.1f}/"
              f"{row['amp']['peak_reserved_gib']:.1f} GiB (allocated/reserved)")
    config = os.path.join(package_configs_dir(), 'faster_rcnn/faster-rcnn_r50_fpn_birads_8xb2-amp-1x_vindr-mammo.py')
    out['data_time_share'] = share = data_time_share(config, roots[8], os.path.join(tmp, 'epoch'), args.scale)
    print(f'  one tools/train.py epoch (Faster R-CNN AMP, {args.images} images): data time {share:.1%} of '
          'the iteration time')
    return out


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--images', type=int, default=32)
    ap.add_argument('--scale', type=int, default=2048, help='training long side')
    ap.add_argument('--workers', type=int, default=2, help='N of the N-worker loader')
    ap.add_argument('--steps', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--json', help='also write the numbers here')
    args = ap.parse_args()
    from data_converters.core import ConvertOptions
    from data_converters.formats import convert
    from data_converters.synth.vindr import write_dataset

    results = dict(scale=args.scale, images=args.images, loader={}, gpu={})
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(os.path.join(tmp, 'raw'), studies=max(args.images // 4, 1), seed=0, scale=1.0,
                      positive_rate=0.5, progress=False, workers=2)
        roots = {}
        for bits in (8, 16):
            roots[bits] = os.path.join(tmp, f'c{bits}')
            convert(os.path.join(tmp, 'raw'), roots[bits], ConvertOptions(max_size=args.scale, bit_depth=bits,
                                                                          val_fraction=0, progress=False, workers=2))
        results['loader'] = _loaders(roots, args)
        if torch.cuda.is_available():
            results['gpu'] = _gpu_steps(roots, tmp, args)
        else:
            print('no GPU visible: the per-config step rates and the epoch data-time share need one')
    if args.json:
        from mammo_det.fileio import write_json

        write_json(args.json, results, indent=1)
    return results


if __name__ == '__main__':
    main()
