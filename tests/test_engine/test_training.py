"""Training on CPU: checkpoint and resume under torch >= 2.6, 2-process gloo DDP, kill -9 then resume."""
import glob
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(REPO, 'configs/demo/faster-rcnn_r18-w16_fpn_birads_1xb4-24e_synth-mammo.py')
PROBE_CONFIG = f"""
_base_ = {DEMO!r}
custom_imports = dict(imports=['mammo_det.registry', 'tests.test_engine.probe_hook'], allow_failed_imports=False)
custom_hooks = [dict(type='SafeCheckpointHook'), dict(type='ProbeHook')]
randomness = dict(seed=0)
train_cfg = dict(val_interval=100)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
"""


@pytest.fixture(scope='module')
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp('cfg') / 'probe_demo.py'
    path.write_text(PROBE_CONFIG)
    return str(path)


def _opts(epochs):
    return [f'train_cfg.max_epochs={epochs}']


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=False)  # files this test itself wrote


def _env():
    # CPU on purpose, also on a GPU machine: these tests are about the CPU paths.
    return dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''), OMP_NUM_THREADS='1',
                CUDA_VISIBLE_DEVICES='')


def _train_cmd(config, data, work, epochs, *extra):
    return [sys.executable, os.path.join(REPO, 'tools/train.py'), config, '--data-root', data, '--work-dir', work,
            *extra, '--cfg-options', *_opts(epochs)]


def test_checkpoint_then_resume_restores_iteration_and_optimizer(converted, config, tmp_path):
    data, _ = converted
    work = str(tmp_path / 'work')
    subprocess.run(_train_cmd(config, data, work, 1), check=True, env=_env(), cwd=REPO, capture_output=True)
    first_end = _load(os.path.join(work, 'probe_end_rank0.pth'))
    assert first_end['iter'] > 0 and os.path.exists(os.path.join(work, 'epoch_1.pth'))
    # torch >= 2.6 loads with weights_only=True by default: resume works thanks to the exact allow-list.
    assert torch.__version__ >= '2.6'
    subprocess.run(_train_cmd(config, data, work, 2, '--resume'), check=True, env=_env(), cwd=REPO, capture_output=True)
    start = _load(os.path.join(work, 'probe_start_rank0.pth'))
    ckpt = _load(os.path.join(work, 'epoch_1.pth'))
    assert start['iter'] == first_end['iter'] == ckpt['meta']['iter'] and start['epoch'] == 1
    saved = ckpt['optimizer']['state']
    assert saved and all('exp_avg' in v for v in saved.values()), 'the AdamW moments are in the checkpoint'
    assert start['optimizer']['state'].keys() == saved.keys()
    for k, v in saved.items():
        for name, value in v.items():  # step, exp_avg, exp_avg_sq
            torch.testing.assert_close(start['optimizer']['state'][k][name], value, msg=f'{k}.{name}')
    end = _load(os.path.join(work, 'probe_end_rank0.pth'))
    assert end['iter'] == 2 * first_end['iter']


def test_safe_loading_still_rejects_foreign_objects(tmp_path):
    from mmengine.runner import CheckpointLoader  # what Runner.resume and load_checkpoint read files with

    from mammo_det.engine.checkpoint import allow_mmengine_checkpoints

    allow_mmengine_checkpoints()

    class Evil:
        def __reduce__(self):
            return (os.system, ('echo pwned',))

    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': Evil()}, path)
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')


def test_dist_train_sh_two_process_gloo_ranks_end_identical(converted, config, tmp_path):
    data, _ = converted
    work = str(tmp_path / 'ddp')
    cmd = ['bash', os.path.join(REPO, 'tools/dist_train.sh'), config, '2', '--data-root', data, '--work-dir', work,
           '--cpu-dist', '--cfg-options', *_opts(1)]
    env = dict(_env(), PYTHON=sys.executable, PORT='29517', MASTER_ADDR='127.0.0.1')
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (_load(os.path.join(work, f'probe_end_rank{r}.pth')) for r in (0, 1))
    assert r0['iter'] == r1['iter'] > 0
    init = _load(os.path.join(work, 'probe_start_rank0.pth'))
    assert init['iter'] == 0
    # Parameters, not BN running stats: DDP broadcasts buffers at the start of each forward, so after the last
    # step each rank holds its own batch's statistics (as on GPUs without SyncBN).
    assert len(r0['params']) > 50
    for k, v in r0['params'].items():
        torch.testing.assert_close(r1['params'][k], v, msg=f'ranks differ in {k}')
    log = open(glob.glob(os.path.join(work, '*', '*.log'))[0]).read()
    assert 'Distributed training: True' in log and 'CPUSafeDistributedDataParallel' in log


def test_kill_minus_nine_then_resume_continues(converted, config, tmp_path):
    data, _ = converted
    work = str(tmp_path / 'killed')
    proc = subprocess.Popen(_train_cmd(config, data, work, 3), env=_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not os.path.exists(os.path.join(work, 'epoch_1.pth')):
        time.sleep(0.2)
    time.sleep(1.0)  # into epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert os.path.exists(os.path.join(work, 'epoch_1.pth')) and not os.path.exists(os.path.join(work, 'epoch_3.pth'))
    per_epoch = _load(os.path.join(work, 'epoch_1.pth'))['meta']['iter']
    subprocess.run(_train_cmd(config, data, work, 3, '--resume'), check=True, env=_env(), cwd=REPO, capture_output=True)
    start = _load(os.path.join(work, 'probe_start_rank0.pth'))
    assert start['epoch'] >= 1 and start['iter'] == start['epoch'] * per_epoch  # resumed at an epoch boundary
    end = _load(os.path.join(work, 'probe_end_rank0.pth'))
    assert end['iter'] == 3 * per_epoch and os.path.exists(os.path.join(work, 'epoch_3.pth'))
