"""The shipped configs trained and tested as users run them: tools/train.py and tools/test.py in a subprocess,
pretrained initialisation resolved offline from the torch hub cache, plus the launcher, lr and weights checks."""
import functools
import glob
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading

import pytest
import torch

from mammo_det.apis.configs import list_configs, package_configs_dir

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESNET50 = 'resnet50-0676ba61.pth'  # the file torchvision://resnet50 and the configs' URL map to
SHIPPED = [c for c in list_configs() if not c.startswith('demo')]
# Image scale of these tests (the configs train at 2048). DINO selects 900 queries among the encoder's tokens: its
# input must have that many.
def _small(config):
    return '(320,320)' if config.startswith('dino') else '(128,128)'


def _env(torch_home, **extra):
    return dict(os.environ, TORCH_HOME=str(torch_home), OMP_NUM_THREADS='2', CUDA_VISIBLE_DEVICES='', **extra)


@pytest.fixture(scope='module')
def torch_home(tmp_path_factory):
    """A torch hub cache holding a ResNet-50 checkpoint under the file name the configs' URL maps to; its values
    are random but known, so a test can tell that initialisation really loaded it."""
    from mmdet.models.backbones import ResNet

    home = tmp_path_factory.mktemp('torch_home')
    torch.manual_seed(1234)
    resnet = ResNet(depth=50)
    resnet.init_weights()  # He-initialised convolutions: a trainable scale, values unlike any other run's
    state = {}
    for k, v in resnet.state_dict().items():
        if 'bn' in k or 'downsample.1' in k:  # BN: move every value off its default 0 / 1
            noise = 0.05 * torch.rand_like(v.float()) if v.is_floating_point() else 0
            v = v + noise
        state[k] = v
    os.makedirs(home / 'hub' / 'checkpoints')
    torch.save(state, home / 'hub' / 'checkpoints' / RESNET50)
    return home, state


def _scales(loader, config):
    # Resize is the third train step and the second test step in every shipped pipeline.
    index = 2 if loader == 'train' else 1
    return [f'{loader}_dataloader.dataset.pipeline.{index}.scale={_small(config)}']


def _run(cmd, env, timeout=900):
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


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
    _run(cmd, _env(home))

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
    _run([sys.executable, 'tools/test.py', path, str(work / 'epoch_1.pth'), '--data-root', data, '--work-dir',
          str(work), '--out', str(preds), '--report-dir', str(tmp_path / 'eval'), '--cfg-options', *test_opts],
         _env(home))
    gt = json.load(open(os.path.join(data, 'annotations', 'instances_test.json')))
    dets = json.load(open(preds))
    assert isinstance(dets, list)
    assert {d['image_id'] for d in dets} <= {im['id'] for im in gt['images'][:3]}
    if 'birads' in config and dets:
        assert all(d['birads'] in (3, 4, 5) and len(d['birads_scores']) == 3 for d in dets)
    metrics = json.load(open(tmp_path / 'eval' / 'metrics.json'))
    assert metrics['num_images'] == 3


def _fail(cmd, env, *expected):
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    for text in expected:
        assert text in proc.stderr, proc.stderr[-3000:]
    return proc


FASTER = os.path.join(REPO, 'configs/faster_rcnn/faster-rcnn_r50_fpn_birads_1x_vindr-mammo.py')
FASTER_AMP = os.path.join(REPO, 'configs/faster_rcnn/faster-rcnn_r50_fpn_birads_8xb2-amp-1x_vindr-mammo.py')


def test_without_weights_or_network_training_stops_naming_file_url_and_command(converted, tmp_path):
    data, _ = converted
    # An empty cache, and the URL's host unreachable (a proxy on a closed local port): no download can happen.
    env = _env(tmp_path / 'empty', https_proxy='http://127.0.0.1:9', HTTPS_PROXY='http://127.0.0.1:9')
    proc = _fail([sys.executable, 'tools/train.py', FASTER, '--data-root', data, '--work-dir', str(tmp_path / 'w')],
                 env, RESNET50, 'https://download.pytorch.org/models/resnet50-0676ba61.pth', 'mammo-det weights')
    assert 'Traceback' not in proc.stderr  # a message, not a stack trace
    assert not os.path.exists(tmp_path / 'w' / 'epoch_1.pth')


def test_distributed_launcher_without_gpu_fails_unless_cpu_dist(converted, torch_home, tmp_path):
    data, _ = converted
    home, _ = torch_home
    env = _env(home, RANK='0', WORLD_SIZE='1', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1', MASTER_PORT='29531')
    proc = _fail([sys.executable, 'tools/train.py', FASTER, '--data-root', data, '--launcher', 'pytorch'], env,
                 '--launcher pytorch but no GPU is visible', '--cpu-dist')
    assert 'Traceback' not in proc.stderr


def test_amp_config_without_gpu_says_fp32(converted, torch_home):
    data, _ = converted
    home, _ = torch_home
    _fail([sys.executable, 'tools/train.py', FASTER_AMP, '--data-root', data], _env(home),
          'mixed precision', '--fp32')


def test_empty_validation_split_is_named(converted, torch_home, tmp_path):
    import shutil

    data, _ = converted
    home, _ = torch_home
    copy = tmp_path / 'data'
    shutil.copytree(os.path.join(data, 'annotations'), copy / 'annotations')
    val = json.load(open(copy / 'annotations' / 'instances_val.json'))
    json.dump(dict(val, images=[], annotations=[]), open(copy / 'annotations' / 'instances_val.json', 'w'))
    _fail([sys.executable, 'tools/train.py', FASTER, '--data-root', str(copy)], _env(home),
          'instances_val.json: the validation split has no images')


@pytest.mark.parametrize('gpus,expected', [(1, 0.02 * 2 / 16), (8, 0.02)])
def test_auto_scale_lr_follows_the_real_batch(converted, torch_home, monkeypatch, gpus, expected):
    """--auto-scale-lr: lr = config lr x (GPUs x images per GPU) / base_batch_size, for 1 x 2 and 8 x 2 images."""
    from mammo_det.apis.runner import build_train_runner

    data, _ = converted
    home, _ = torch_home
    monkeypatch.setenv('TORCH_HOME', str(home))
    runner = build_train_runner(FASTER, work_dir=None, data_root=data, auto_scale_lr=True,
                                cfg_options={'train_dataloader.num_workers': 0,
                                             'train_dataloader.persistent_workers': False})
    monkeypatch.setattr(type(runner), 'world_size', property(lambda self: gpus))
    wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.scale_lr(wrapper, runner.auto_scale_lr)
    assert runner.cfg.train_dataloader.batch_size == 2
    assert wrapper.optimizer.param_groups[0]['lr'] == pytest.approx(expected)


def test_slurm_cpu_path_sets_master_address_from_the_node_list(tmp_path, monkeypatch):
    from mammo_det.engine import dist

    fake = tmp_path / 'scontrol'
    fake.write_text('#!/bin/sh\n[ "$1 $2" = "show hostnames" ] && printf "gpu-a17\\ngpu-a18\\n"\n')
    fake.chmod(0o755)
    monkeypatch.setenv('PATH', f'{tmp_path}{os.pathsep}{os.environ["PATH"]}')
    for key in ('MASTER_ADDR', 'MASTER_PORT', 'RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        monkeypatch.setenv(key, '')  # so that monkeypatch restores the original (maybe absent) value afterwards
        monkeypatch.delenv(key)
    monkeypatch.setenv('SLURM_PROCID', '3')
    monkeypatch.setenv('SLURM_NTASKS', '4')
    monkeypatch.setenv('SLURM_LOCALID', '1')
    monkeypatch.setenv('SLURM_NODELIST', 'gpu-a[17-18]')
    dist._slurm_env()
    assert (os.environ['MASTER_ADDR'], os.environ['MASTER_PORT']) == ('gpu-a17', '29500')
    assert (os.environ['RANK'], os.environ['WORLD_SIZE'], os.environ['LOCAL_RANK']) == ('3', '4', '1')


def test_cpu_ddp_wrapper_keeps_mmengine_defaults(tmp_path):
    """One gloo process: the wrapper gets broadcast_buffers=False and find_unused_parameters from the config."""
    code = '''
import os
from mmengine.config import Config
from mmengine.registry import MODEL_WRAPPERS
import torch
import mammo_det.registry
from mammo_det.engine.dist import init_dist_for_launcher
os.environ.update(RANK='0', WORLD_SIZE='1', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1', MASTER_PORT='29533')
cfg = Config(dict(find_unused_parameters=True))
init_dist_for_launcher(cfg, 'pytorch', cpu_dist=True)
wrapped = MODEL_WRAPPERS.build(cfg.model_wrapper_cfg, default_args=dict(module=torch.nn.Linear(2, 2),
                                                                      device_ids=[0]))
print(type(wrapped).__name__, wrapped.broadcast_buffers, wrapped.find_unused_parameters, wrapped.device_ids)
'''
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO,
                         env=dict(os.environ, CUDA_VISIBLE_DEVICES=''), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ['CPUSafeDistributedDataParallel', 'False', 'True', 'None']


def test_slurm_train_sh_honours_python(tmp_path):
    fake = tmp_path / 'srun'
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$SRUN_LOG"\n')
    fake.chmod(0o755)
    log = tmp_path / 'args'
    env = dict(os.environ, PATH=f'{tmp_path}{os.pathsep}{os.environ["PATH"]}', SRUN_LOG=str(log),
               PYTHON='/opt/py/bin/python3', GPUS='2', GPUS_PER_NODE='2')
    for script, args in (('slurm_train.sh', ['CONFIG', 'WORK']), ('slurm_test.sh', ['CONFIG', 'CKPT'])):
        subprocess.run(['bash', f'tools/{script}', 'part', 'job', *args], cwd=REPO, env=env, check=True,
                       capture_output=True)
        argv = log.read_text().split('\n')
        assert '/opt/py/bin/python3' in argv and '--launcher=slurm' in argv, argv


def _serve(folder):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_weights_command_fills_an_empty_cache_and_skips_what_is_cached(tmp_path):
    from mammo_det.cli import main

    served = tmp_path / 'www'
    served.mkdir()
    payload = os.urandom(100_000)
    good = f'backbone-{hashlib.sha256(payload).hexdigest()[:8]}.pth'
    (served / good).write_bytes(payload)
    (served / 'corrupt-deadbeef.pth').write_bytes(payload)
    server = _serve(served)
    try:
        base = f'http://127.0.0.1:{server.server_address[1]}'
        config = tmp_path / 'c.py'
        config.write_text(f"model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='{base}/{good}')),"
                          f"\n             neck=dict(init_cfg=[dict(type='Xavier'), dict(type='Pretrained', "
                          f"checkpoint='{base}/{good}')]))\nload_from = None\n")
        cache = tmp_path / 'cache'
        assert main(['weights', str(config), '--cache-dir', str(cache)]) == 0
        cached = cache / 'hub' / 'checkpoints' / good
        assert cached.read_bytes() == payload
        os.utime(cached, (1, 1))
        assert main(['weights', str(config), '--cache-dir', str(cache)]) == 0
        assert os.stat(cached).st_mtime == 1  # cached: not downloaded again
        bad = tmp_path / 'bad.py'
        bad.write_text(f"model = dict(backbone=dict(init_cfg=dict(type='Pretrained', "
                       f"checkpoint='{base}/corrupt-deadbeef.pth')))\n")
        assert main(['weights', str(bad), '--cache-dir', str(cache)]) == 2
        assert not (cache / 'hub' / 'checkpoints' / 'corrupt-deadbeef.pth').exists()
        assert not [n for n in os.listdir(cache / 'hub' / 'checkpoints') if '.tmp' in n]
    finally:
        server.shutdown()


def test_weights_lists_every_checkpoint_of_the_shipped_configs():
    from mmengine.config import Config

    from mammo_det.apis.weights import config_checkpoints

    for config in SHIPPED:
        urls = config_checkpoints(Config.fromfile(os.path.join(package_configs_dir(), config)))
        assert urls == ['https://download.pytorch.org/models/resnet50-0676ba61.pth'], (config, urls)
