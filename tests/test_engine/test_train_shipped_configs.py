"""Every shipped config trained and tested as users run them: tools/train.py and tools/test.py in a subprocess, the
pretrained backbone found offline in the torch hub cache (and really loaded), every prediction with a BI-RADS."""
import glob
import json
import os
import sys

import pytest
import torch

from mammo_det.apis.configs import list_configs, package_configs_dir

from .conftest import run_tool, tool_env

pytestmark = pytest.mark.slow

SHIPPED = [c for c in list_configs() if not c.startswith('demo')]


SMALL = '(128,128)'  # the image scale of these runs (the configs train at 2048)


def _scales(loader, config):
    """Options for a small run of ``config``: the image scale, and for DINO fewer queries (it selects them among
    the encoder's tokens, of which a 128-pixel image has a few hundred)."""
    # Resize is the third train step and the second test step in every shipped pipeline.
    index = 2 if loader == 'train' else 1
    queries = ['model.detector_options.num_queries=100'] if config.startswith('dino') else []
    return [f'{loader}_dataloader.dataset.pipeline.{index}.scale={SMALL}', *queries]


@pytest.mark.parametrize('config', SHIPPED)
def test_shipped_config_trains_tests_and_loads_pretrained(config, converted, torch_home, tmp_path):
    """Two iterations and one validation with tools/train.py, then tools/test.py --out on its checkpoint."""
    from mammo_det.engine.checkpoint import allow_mmengine_checkpoints

    data, _ = converted
    home, state = torch_home
    path = os.path.join(package_configs_dir(), config)
    work = tmp_path / 'work'
    opts = ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'train_dataloader.dataset.indices=4',
            'train_dataloader.sampler.neg_fraction=1.0', 'train_dataloader.batch_size=2',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.dataset.indices=3', 'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False', 'default_hooks.logger.interval=1',
            *_scales('train', config), *_scales('val', config)]
    amp = '-amp-' in config
    cmd = [sys.executable, 'tools/train.py', path, '--data-root', data, '--work-dir', str(work),
           *(['--fp32'] if amp else []), '--cfg-options', *opts]
    run_tool(cmd, tool_env(home))

    scalars = [json.loads(line) for line in open(glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))[0])]
    losses = [s['loss'] for s in scalars if 'loss' in s]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(v)) for v in losses), losses
    assert any('mammo/mAP' in s for s in scalars), 'the validation wrote the metric'

    allow_mmengine_checkpoints()
    ckpt = torch.load(work / 'epoch_1.pth', map_location='cpu')
    weights = ckpt['state_dict']
    if 'detector.backbone.conv1.weight' in weights:  # a zoo model inside BiradsDetector
        weights = {k[len('detector.'):]: v for k, v in weights.items() if k.startswith('detector.')}
    # The stem and the first stage are frozen (frozen_stages=1, BN in eval): they must still equal the file.
    for key in ('conv1.weight', 'bn1.running_mean', 'layer1.0.conv1.weight', 'layer1.2.bn3.weight'):
        torch.testing.assert_close(weights[f'backbone.{key}'], state[key], msg=key)
    # A later stage was initialised from the file too, then trained for two steps at most a little.
    moved = (weights['backbone.layer4.0.conv1.weight'] - state['layer4.0.conv1.weight']).abs().max()
    assert moved < 0.1 * state['layer4.0.conv1.weight'].abs().max()
    if amp:
        assert ckpt['meta']['cfg'].count("type='OptimWrapper'") >= 1  # --fp32 swapped the AMP wrapper
        return  # its model and test path are those of its plain twin, tested below in that twin's run

    preds = tmp_path / 'preds.json'
    test_opts = ['test_dataloader.dataset.indices=3', 'test_dataloader.num_workers=0',
                 'test_dataloader.persistent_workers=False', *_scales('test', config)]
    run_tool([sys.executable, 'tools/test.py', path, str(work / 'epoch_1.pth'), '--data-root', data, '--work-dir',
          str(work), '--out', str(preds), '--report-dir', str(tmp_path / 'eval'), '--cfg-options', *test_opts],
         tool_env(home))
    gt = json.load(open(os.path.join(data, 'annotations', 'instances_test.json')))
    dets = json.load(open(preds))
    assert isinstance(dets, list)
    assert {d['image_id'] for d in dets} <= {im['id'] for im in gt['images'][:3]}
    if 'birads' in config and dets:
        assert all(d['birads'] in (3, 4, 5) and len(d['birads_scores']) == 3 for d in dets)
    metrics = json.load(open(tmp_path / 'eval' / 'metrics.json'))
    assert metrics['num_images'] == 3




ANY_ARCHITECTURE = '''_base_ = [{base!r} + '/_base_/datasets/vindr-mammo_detection.py',
          {base!r} + '/_base_/schedules/schedule_1x.py', {base!r} + '/_base_/default_runtime.py']
model = dict(type='BiradsDetector', detector={zoo!r})
'''

# a single-head, a multi-stage and a query-based zoo model
ZOO = {'atss': 'mmdet::atss/atss_r50_fpn_1x_coco.py', 'cascade': 'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py',
       'sparse': 'mmdet::sparse_rcnn/sparse-rcnn_r50_fpn_1x_coco.py'}


# test options that keep every box of a barely trained model, degenerate ones too (some have zero width)
KEEP_EVERY_BOX = {ZOO['atss']: ['model.detector_options.test_cfg.score_thr=0.0',
                                'model.detector_options.test_cfg.min_bbox_size=-1'],
                  ZOO['cascade']: ['model.detector_options.test_cfg.rcnn.score_thr=0.0'],
                  ZOO['sparse']: []}  # its top-k keeps boxes whatever their score


@pytest.mark.parametrize('zoo', list(ZOO.values()), ids=list(ZOO))
def test_any_zoo_detector_with_the_documented_lines_trains_and_predicts_birads(zoo, converted, synth_root, torch_home,
                                                                              tmp_path):
    """The two lines docs/training.md gives, on a zoo config the project does not ship: two iterations through
    tools/train.py, then tools/test.py --out, whose every box carries BI-RADS probabilities and their argmax. The
    class count of every head (Cascade R-CNN's three, Sparse R-CNN's six) comes from the data."""
    from mammo_det.engine.checkpoint import allow_mmengine_checkpoints

    data, _ = converted
    raw, _ = synth_root
    home, state = torch_home
    config = tmp_path / 'user_config.py'
    config.write_text(ANY_ARCHITECTURE.format(base=package_configs_dir(), zoo=zoo))
    work = tmp_path / 'work'
    # Four images with findings, so that both iterations train the BI-RADS branch on boxes.
    train = json.load(open(os.path.join(data, 'annotations', 'instances_train.json')))
    with_boxes = {a['image_id'] for a in train['annotations'] if a.get('birads')}
    indices = [i for i, im in enumerate(train['images']) if im['id'] in with_boxes][:4]
    opts = ['train_cfg.max_epochs=1', 'train_cfg.val_interval=2', f'train_dataloader.dataset.indices={indices}',
            'train_dataloader.sampler.neg_fraction=1.0', 'train_dataloader.batch_size=2',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'default_hooks.logger.interval=1', *_scales('train', 'zoo'),
            # the validation mmengine runs after the last epoch: three images at the small scale
            'val_dataloader.dataset.indices=3', 'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False', *_scales('val', 'zoo')]
    both = []  # options of the training and the test run
    if 'sparse' in zoo:  # fewer proposals: 100 queries x 6 stages on two CPU cores
        both = ['model.detector_options.rpn_head.num_proposals=20']
    opts += both
    run_tool([sys.executable, 'tools/train.py', str(config), '--data-root', data, '--work-dir', str(work),
              '--cfg-options', *opts], tool_env(home))
    scalars = [json.loads(line) for line in open(glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))[0])]
    losses = [s for s in scalars if 'loss' in s]
    assert len(losses) == 2 and all(0 < s['loss_birads'] < float('inf') for s in losses), losses

    # the zoo model's torchvision init ran inside the wrapper (frozen stem: still the file's)
    allow_mmengine_checkpoints()
    ckpt = torch.load(work / 'epoch_1.pth', map_location='cpu')
    torch.testing.assert_close(ckpt['state_dict']['detector.backbone.conv1.weight'], state['conv1.weight'])
    classes = [c['name'] for c in train['categories']]
    assert ckpt['meta']['dataset_meta']['classes'] == tuple(classes) or \
        list(ckpt['meta']['dataset_meta']['classes']) == classes
    cls_weights = [v for k, v in ckpt['state_dict'].items() if k.endswith(('fc_cls.weight', 'atss_cls.weight'))]
    assert cls_weights and all(len(w) in (len(classes), len(classes) + 1) for w in cls_weights), \
        [w.shape for w in cls_weights]  # sigmoid heads: one output per class; softmax: one more, background

    preds = tmp_path / 'preds.json'
    run_tool([sys.executable, 'tools/test.py', str(config), str(work / 'epoch_1.pth'), '--data-root', data,
              '--work-dir', str(work), '--out', str(preds), '--report-dir', str(tmp_path / 'eval'), '--cfg-options',
              'test_dataloader.dataset.indices=3', 'test_dataloader.num_workers=0',
              'test_dataloader.persistent_workers=False', *KEEP_EVERY_BOX[zoo], *_scales('test', 'zoo'), *both],
             tool_env(home))
    dets = json.load(open(preds))
    assert dets, 'score_thr 0 keeps boxes'
    for d in dets:
        assert sum(d['birads_scores']) == pytest.approx(1, abs=1e-4) and len(d['birads_scores']) == 3
        assert d['birads'] == (3, 4, 5)[max(range(3), key=d['birads_scores'].__getitem__)]
    assert json.load(open(tmp_path / 'eval' / 'metrics.json'))['birads'] is not None  # evaluated like any other
    if 'atss' not in zoo:
        return
    # `mammo-det infer` on raw DICOMs builds the wrapped model for the checkpoint's classes, as training did
    dicom = sorted(glob.glob(os.path.join(raw, 'images', '*', '*.dicom')))[0]
    keep = tmp_path / 'keep_every_box.py'  # infer takes no --cfg-options: the same options as a config
    keep.write_text(f'_base_ = {str(config)!r}\nmodel = dict(detector_options=dict(test_cfg=dict(score_thr=0.0, '
                    'min_bbox_size=-1)))\n')
    run_tool([sys.executable, '-m', 'mammo_det', 'infer', str(keep), str(work / 'epoch_1.pth'), dicom, '--out',
              str(tmp_path / 'infer'), '--score-thr', '0', '--workers', '0', '--device', 'cpu'], tool_env(home))
    (entry,) = json.load(open(tmp_path / 'infer' / 'predictions.json'))
    assert entry['detections'] and {d['category'] for d in entry['detections']} <= set(classes)
    assert all(len(d['birads_scores']) == 3 for d in entry['detections'])
