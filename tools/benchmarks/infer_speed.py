"""mammo-det infer throughput on a folder of full-size DICOMs (3518 x 2800), side by side: 1 worker against N,
for the input stage alone (decode and preprocess in the workers: what a GPU node waits for) and end to end.

    python tools/benchmarks/infer_speed.py [--images 16] [--workers 2] [--config demo]

The weights are the config's random initialisation saved as a checkpoint (speed does not depend on them); DICOMs
come from the synthetic writer at the real Siemens-like size. End to end on a CPU, the model shares the cores with
the workers, so the speed-up there is bounded by the model's share of the time.
"""
import argparse
import os
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, REPO)


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--images', type=int, default=16)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--config', default='demo')
    ap.add_argument('--batch-size', type=int, default=2)
    args = ap.parse_args()
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    import mammo_det.registry  # noqa: F401
    from data_converters.synth.vindr import plan_dataset, render_dicom
    from mammo_det.apis.configs import find_config
    from mammo_det.apis.inference import find_inputs, infer, input_loader, load_model
    from mammo_det.apis.runner import set_model_classes
    from mammo_det.zoo import expand_wrapped

    register_all_modules()
    config = find_config(args.config)
    cfg = Config.fromfile(config)
    set_model_classes(cfg)
    expand_wrapped(cfg.model).backbone.init_cfg = None
    with tempfile.TemporaryDirectory() as tmp:
        model = MODELS.build(cfg.model)
        model.init_weights()
        ckpt = os.path.join(tmp, 'model.pth')
        torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=dict(classes=tuple(cfg.classes)))),
                   ckpt)
        plans = [im for im in plan_dataset(args.images, seed=1, scale=1.0) if im.profile == 'siemens']
        for k, im in enumerate(plans[:args.images]):
            render_dicom(im, os.path.join(tmp, 'dicoms', f'{k:03d}.dicom'))
        n = len(os.listdir(os.path.join(tmp, 'dicoms')))
        _, pipeline = load_model(config, ckpt, 'cpu')
        files = find_inputs([os.path.join(tmp, 'dicoms')])
        stage = {}
        for workers in (1, args.workers):
            start = time.perf_counter()
            count = sum(len(batch) for batch in input_loader(files, pipeline, args.batch_size, workers))
            stage[workers] = count / (time.perf_counter() - start)
        rates = {}
        for workers in (1, args.workers):
            infer(config, ckpt, [os.path.join(tmp, 'dicoms', '000.dicom')], os.path.join(tmp, 'warm'),
                  progress=False, workers=0)  # imports and model start-up are not what this measures
            start = time.perf_counter()
            res = infer(config, ckpt, [os.path.join(tmp, 'dicoms')], os.path.join(tmp, f'o{workers}'),
                        progress=False, workers=workers, batch_size=args.batch_size)
            rates[workers] = len(res['predictions']) / (time.perf_counter() - start)
    w = args.workers
    print(f'{n} DICOMs of 3518 x 2800, {os.path.basename(config)}, batch {args.batch_size}:')
    print(f'  input stage (decode + preprocess in workers): 1 worker {stage[1]:.2f} img/s, {w} workers '
          f'{stage[w]:.2f} img/s -> {stage[w] / stage[1]:.2f}x (target >= 1.6x with 2)')
    print(f'  mammo-det infer end to end on the CPU: 1 worker {rates[1]:.2f} img/s, {w} workers {rates[w]:.2f} '
          f'img/s -> {rates[w] / rates[1]:.2f}x')
    return dict(input_stage=stage, end_to_end=rates)


if __name__ == '__main__':
    main()
