"""A hook the training tests load through custom_imports: records what the runner holds at start and end."""
import os

import torch
from mmengine.hooks import Hook
from mmengine.dist import get_rank
from mmdet.registry import HOOKS


@HOOKS.register_module()
class ProbeHook(Hook):
    """Saves, per rank, the iteration and optimizer state at before_train and the weights at after_train."""

    def before_train(self, runner) -> None:
        state = runner.optim_wrapper.optimizer.state_dict()
        torch.save(dict(iter=runner.iter, epoch=runner.epoch, optimizer=state),
                   os.path.join(runner.work_dir, f'probe_start_rank{get_rank()}.pth'))

    def after_train(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        torch.save(dict(iter=runner.iter, params={k: v.detach() for k, v in model.named_parameters()}),
                   os.path.join(runner.work_dir, f'probe_end_rank{get_rank()}.pth'))
