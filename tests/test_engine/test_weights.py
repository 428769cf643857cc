"""Pretrained weights offline: the weights command fills a cache, a run without weights or network says what to do,
and every shipped config names the same checkpoint."""
import functools
import hashlib
import http.server
import os
import sys
import threading

from mammo_det.apis.configs import list_configs, package_configs_dir

from .conftest import FASTER, RESNET50, fail_tool, tool_env

SHIPPED = [c for c in list_configs() if not c.startswith('demo')]


def test_without_weights_or_network_training_stops_naming_file_url_and_command(converted, tmp_path):
    data, _ = converted
    # An empty cache, and the URL's host unreachable (a proxy on a closed local port): no download can happen.
    env = tool_env(tmp_path / 'empty', https_proxy='http://127.0.0.1:9', HTTPS_PROXY='http://127.0.0.1:9')
    proc = fail_tool([sys.executable, 'tools/train.py', FASTER, '--data-root', data, '--work-dir', str(tmp_path / 'w')],
                 env, RESNET50, 'https://download.pytorch.org/models/resnet50-0676ba61.pth', 'mammo-det weights')
    assert 'Traceback' not in proc.stderr  # a message, not a stack trace
    assert not os.path.exists(tmp_path / 'w' / 'epoch_1.pth')


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


def test_weights_of_a_wrapped_zoo_config_are_named_by_url_without_torchvision(tmp_path):
    """A BiradsDetector on zoo configs: the wrapped models' ``torchvision://`` and ``open-mmlab://`` backbones are
    found by their download URLs (which MMEngine's own maps give), for the offline check and for the runner."""
    from mmengine.config import Config

    from mammo_det.apis.runner import load_config
    from mammo_det.apis.weights import config_checkpoints

    for zoo, url in [('mmdet::atss/atss_r50_fpn_1x_coco.py',
                      'https://download.pytorch.org/models/resnet50-0676ba61.pth'),
                     ('mmdet::faster_rcnn/faster-rcnn_x101-32x4d_fpn_1x_coco.py',
                      'https://download.openmmlab.com/pretrain/third_party/resnext101_32x4d-a5af3160.pth')]:
        config = tmp_path / 'user.py'
        config.write_text(f"model = dict(type='BiradsDetector', detector={zoo!r})\n")
        assert config_checkpoints(Config.fromfile(str(config))) == [url]
        plain = tmp_path / 'plain.py'
        plain.write_text(f"_base_ = {zoo!r}\n")
        cfg = load_config(str(plain))
        assert cfg.model.backbone.init_cfg.checkpoint == url  # what MMEngine is handed
