from .checkpoint import SafeCheckpointHook, allow_mmengine_checkpoints
from .dist import CPUSafeDistributedDataParallel, init_dist_for_launcher

__all__ = ['SafeCheckpointHook', 'allow_mmengine_checkpoints', 'CPUSafeDistributedDataParallel',
           'init_dist_for_launcher']
