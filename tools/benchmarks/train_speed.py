"""Training speed: data-pipeline throughput (8- vs 16-bit PNGs at the training scale) and model step time.

    python tools/benchmarks/train_speed.py [CONFIG] [--images 16] [--scale 2048] [--steps 3]

On CPU it times the pipeline per worker and a Faster R-CNN + BI-RADS training step at a reduced scale; with a GPU
it also reports images/s and peak memory with and without AMP, side by side in one run.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))
REPO = os.path.join(os.path.dirname(__file__), '..', '..')
DEFAULT = os.path.join(REPO, 'configs/faster_rcnn/faster-rcnn_r50_fpn_birads_1x_vindr-mammo.py')


def pipeline_rate(data_root, scale, n):
    from mmcv.transforms import Compose
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    from mammo_det.datasets import VinDrMammoDataset

    ds = VinDrMammoDataset(data_root=data_root, ann_file='annotations/instances_train.json',
                           data_prefix=dict(img='images/'), pipeline=[])
    pipe = Compose([dict(type='LoadMammogram'), dict(type='LoadBiradsAnnotations', with_bbox=True),
                    dict(type='Resize', scale=(scale, scale), keep_ratio=True),
                    dict(type='RandomFlip', prob=0.5, direction='horizontal'), dict(type='PackMammoInputs')])
    infos = [ds.get_data_info(i % len(ds)) for i in range(n)]
    pipe(dict(infos[0]))
    t = time.perf_counter()
    for info in infos:
        pipe(dict(info))
    return n / (time.perf_counter() - t)


def step_time(config, scale, steps, amp, device):
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    from mmdet.utils import register_all_modules
    register_all_modules()
    import mammo_det.registry  # noqa: F401

    cfg = Config.fromfile(config)
    model = MODELS.build(cfg.model).to(device).train()
    optim = build_optim_wrapper(model, dict(type='AmpOptimWrapper' if amp else 'OptimWrapper',
                                            optimizer=dict(type='SGD', lr=0.001, momentum=0.9)))
    h, w = scale, int(scale * 0.8)
    samples = []
    for _ in range(2):
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), scale_factor=(1., 1.)))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[100., 200., 400., 500.]]), labels=torch.tensor([0]),
                                      birads=torch.tensor([4]))
        samples.append(s)
    data = dict(inputs=[torch.rand(3, h, w) * 255 for _ in range(2)], data_samples=samples)
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        model.train_step(data, optim)
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    mem = torch.cuda.max_memory_allocated() / 2**30 if device.startswith('cuda') else None
    return float(np.median(times[1:])), mem


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('config', nargs='?', default=DEFAULT)
    ap.add_argument('--images', type=int, default=16)
    ap.add_argument('--scale', type=int, default=2048, help='training long side for the pipeline')
    ap.add_argument('--steps', type=int, default=3)
    args = ap.parse_args()
    from data_converters.synth import write_dataset
    from data_converters.vindr_mammo import ConvertOptions, convert

    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(os.path.join(tmp, 'raw'), studies=max(args.images // 4, 1), seed=0, scale=1.0,
                      positive_rate=0.5, progress=False)
        rates = {}
        for bits in (8, 16):
            out = os.path.join(tmp, f'c{bits}')
            convert(os.path.join(tmp, 'raw'), out, ConvertOptions(max_size=args.scale, bit_depth=bits,
                                                                  val_fraction=0, progress=False, workers=2))
            rates[bits] = pipeline_rate(out, args.scale, args.images)
        print(f'data pipeline at long side {args.scale}, one worker: 8-bit PNG {rates[8]:.1f} img/s, '
              f'16-bit PNG {rates[16]:.1f} img/s (ratio {rates[16] / rates[8]:.2f})')
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    scale = args.scale if device == 'cuda' else 512
    t, _ = step_time(args.config, scale, args.steps, False, device)
    print(f'{os.path.basename(args.config)} training step, 2 images at {scale} px on {device}: {t:.2f} s '
          f'({2 / t:.2f} img/s)')
    if device == 'cuda':
        t32, m32 = step_time(args.config, scale, args.steps, False, device)
        t16, m16 = step_time(args.config, scale, args.steps, True, device)
        print(f'fp32 {2 / t32:.1f} img/s, peak {m32:.1f} GiB; AMP {2 / t16:.1f} img/s, peak {m16:.1f} GiB; '
              f'AMP speed-up {t32 / t16:.2f}x')


if __name__ == '__main__':
    main()
