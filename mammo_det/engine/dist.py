"""Distributed training on CPU processes (gloo), behind an explicit switch; the GPU (nccl) path stays MMEngine's.

MMEngine assumes CUDA in two places: ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` and its DDP wrapper is
given ``device_ids=[LOCAL_RANK]``, which CPU modules reject. With ``--cpu-dist`` and no GPU, the gloo group starts
before the Runner (which then skips its own ``init_dist``) and the model is wrapped by
:class:`CPUSafeDistributedDataParallel`. With a GPU nothing here runs: MMEngine's own launcher code and its default
``MMDistributedDataParallel(broadcast_buffers=False, find_unused_parameters=cfg.find_unused_parameters)`` apply.
"""
from __future__ import annotations

import os
import subprocess

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


def slurm_env() -> None:
    """RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT from the Slurm step, as MMEngine's GPU path does."""
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ.get('SLURM_STEP_NODELIST') or os.environ.get('SLURM_NODELIST', '')
        first = ''
        if nodes:
            try:
                first = subprocess.run(['scontrol', 'show', 'hostnames', nodes], capture_output=True, text=True,
                                       check=True).stdout.split()[0]
            except (OSError, subprocess.CalledProcessError, IndexError):
                first = ''
        os.environ['MASTER_ADDR'] = first or '127.0.0.1'
    os.environ.setdefault('MASTER_PORT', '29500')


def init_dist_for_launcher(cfg, launcher: str, cpu_dist: bool = False) -> None:
    """With ``cpu_dist`` and no GPU: starts the gloo group and sets the CPU-safe DDP wrapper in ``cfg``."""
    if launcher == 'none' or torch.cuda.is_available() or not cpu_dist:
        return
    if launcher not in ('pytorch', 'slurm'):
        raise ValueError(f'launcher {launcher!r} is not supported on CPU (use pytorch or slurm)')
    if launcher == 'slurm':
        slurm_env()
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.model_wrapper_cfg = dict(type='CPUSafeDistributedDataParallel', broadcast_buffers=False,
                                 find_unused_parameters=cfg.get('find_unused_parameters', False))


@MODEL_WRAPPERS.register_module()
class CPUSafeDistributedDataParallel(MMDistributedDataParallel):
    """MMDistributedDataParallel that drops ``device_ids`` when the module lives on the CPU."""

    def __init__(self, module, device_ids=None, **kwargs):
        if not torch.cuda.is_available():
            device_ids = None
            kwargs.pop('output_device', None)
        super().__init__(module=module, device_ids=device_ids, **kwargs)
