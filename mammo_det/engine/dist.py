"""Distributed training that also runs on CPU (gloo), leaving the normal GPU (nccl) path untouched.

mmengine assumes CUDA in two places: ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` and the DDP
wrapper is given ``device_ids=[LOCAL_RANK]``, which CPU modules reject.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


def init_dist_for_launcher(launcher: str) -> None:
    """Without CUDA, starts the gloo process group before the Runner (which then skips its own init_dist)."""
    if launcher == 'none' or torch.cuda.is_available() or dist.is_initialized():
        return
    if launcher not in ('pytorch', 'slurm'):
        raise ValueError(f'launcher {launcher!r} is not supported on CPU (use pytorch or slurm)')
    if launcher == 'slurm':  # torchrun sets these; srun gives its own
        os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
        os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
        os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    dist.init_process_group(backend='gloo')


@MODEL_WRAPPERS.register_module()
class CPUSafeDistributedDataParallel(MMDistributedDataParallel):
    """MMDistributedDataParallel that drops ``device_ids`` when the module lives on the CPU."""

    def __init__(self, module, device_ids=None, **kwargs):
        if not torch.cuda.is_available():
            device_ids = None
            kwargs.pop('output_device', None)
        super().__init__(module=module, device_ids=device_ids, **kwargs)
