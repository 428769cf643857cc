"""Shared by the engine tests: a torch hub cache holding a known ResNet-50, the environment of the tools/ scripts,
and helpers that run them as a user would."""
import os
import subprocess

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESNET50 = 'resnet50-0676ba61.pth'  # the file torchvision://resnet50 and the configs' URL map to
FASTER = os.path.join(REPO, 'configs/faster_rcnn/faster-rcnn_r50_fpn_birads_1x_vindr-mammo.py')
FASTER_AMP = os.path.join(REPO, 'configs/faster_rcnn/faster-rcnn_r50_fpn_birads_8xb2-amp-1x_vindr-mammo.py')


def tool_env(torch_home, **extra):
    return dict(os.environ, TORCH_HOME=str(torch_home), OMP_NUM_THREADS=os.environ['OMP_NUM_THREADS'],
                CUDA_VISIBLE_DEVICES='', **extra)


@pytest.fixture(scope='session')
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


def run_tool(cmd, env, timeout=900):
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def fail_tool(cmd, env, *expected):
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    for text in expected:
        assert text in proc.stderr, proc.stderr[-3000:]
    return proc
