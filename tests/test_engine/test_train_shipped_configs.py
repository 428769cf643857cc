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

SHIPPED = [c for c in list_configs() if not c.startswith('demo')]


def _small(config):
    """The image scale of these runs (the configs train at 2048): DINO selects 900 queries among the encoder's
    tokens, so its input must have that many."""
    return '(320,320)' if config.startswith(('dino', 'deformable')) else '(128,128)'


def _scales(loader, config):
    # Resize is the third train step and the second test step in every shipped pipeline.
    index = 2 if loader == 'train' else 1
    return [f'{loader}_dataloader.dataset.pipeline.{index}.scale={_small(config)}']


@pytest.mark.slow
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
    # The stem and the first stage are frozen (frozen_stages=1, BN in eval): they must still equal the file.
    for key in ('conv1.weight', 'bn1.running_mean', 'layer1.0.conv1.weight', 'layer1.2.bn3.weight'):
        torch.testing.assert_close(weights[f'backbone.{key}'], state[key], msg=key)
    # A later stage was initialised from the file too, then trained for two steps at most a little.
    moved = (weights['backbone.layer4.0.conv1.weight'] - state['layer4.0.conv1.weight']).abs().max()
    assert moved < 0.1 * state['layer4.0.conv1.weight'].abs().max()
    if amp:
        assert ckpt['meta']['cfg'].count("type='OptimWrapper'") >= 1  # --fp32 swapped the AMP wrapper

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


