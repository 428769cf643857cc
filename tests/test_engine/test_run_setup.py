"""What stops a run before anything is built (a distributed launcher or an AMP config without a GPU, an empty
validation split) and the distributed set-up on CPU and Slurm."""
import json
import os
import subprocess
import sys

from .conftest import FASTER, FASTER_AMP, REPO, fail_tool, tool_env


def test_distributed_launcher_without_gpu_fails_unless_cpu_dist(converted, torch_home, tmp_path):
    data, _ = converted
    home, _ = torch_home
    env = tool_env(home, RANK='0', WORLD_SIZE='1', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1', MASTER_PORT='29531')
    proc = fail_tool([sys.executable, 'tools/train.py', FASTER, '--data-root', data, '--launcher', 'pytorch'], env,
                 '--launcher pytorch but no GPU is visible', '--cpu-dist')
    assert 'Traceback' not in proc.stderr


def test_amp_config_without_gpu_says_fp32(converted, torch_home):
    data, _ = converted
    home, _ = torch_home
    fail_tool([sys.executable, 'tools/train.py', FASTER_AMP, '--data-root', data], tool_env(home),
          'mixed precision', '--fp32')


def test_amp_and_fp32_together_are_refused_without_a_traceback(converted, torch_home):
    data, _ = converted
    home, _ = torch_home
    proc = fail_tool([sys.executable, 'tools/train.py', FASTER_AMP, '--data-root', data, '--amp', '--fp32'],
                     tool_env(home), '--amp and --fp32 contradict each other')
    assert 'Traceback' not in proc.stderr


def test_a_config_whose_heads_disagree_with_the_data_stops_naming_both(converted, torch_home):
    """The shipped Faster R-CNN states 10 classes; data converted with two stops it before anything is built."""
    import shutil
    import tempfile

    data, _ = converted
    home, _ = torch_home
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(os.path.join(data, 'annotations'), os.path.join(tmp, 'annotations'))
        path = os.path.join(tmp, 'annotations', 'instances_train.json')
        train = json.load(open(path))
        json.dump(dict(train, categories=train['categories'][:2],
                       annotations=[a for a in train['annotations'] if a['category_id'] <= 2]), open(path, 'w'))
        proc = fail_tool([sys.executable, 'tools/train.py', FASTER, '--data-root', tmp], tool_env(home),
                         'model.roi_head.bbox_head.num_classes = 10, but the dataset has 2 classes',
                         'instances_train.json')
    assert 'Traceback' not in proc.stderr


def test_empty_validation_split_is_named(converted, torch_home, tmp_path):
    import shutil

    data, _ = converted
    home, _ = torch_home
    copy = tmp_path / 'data'
    shutil.copytree(os.path.join(data, 'annotations'), copy / 'annotations')
    val = json.load(open(copy / 'annotations' / 'instances_val.json'))
    json.dump(dict(val, images=[], annotations=[]), open(copy / 'annotations' / 'instances_val.json', 'w'))
    fail_tool([sys.executable, 'tools/train.py', FASTER, '--data-root', str(copy)], tool_env(home),
          'instances_val.json: the validation split has no images')


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
    dist.slurm_env()
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


