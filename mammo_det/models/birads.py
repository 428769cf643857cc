"""What every BI-RADS branch shares: the class targets (3/4/5 -> 0/1/2), the loss over boxes that have a BI-RADS,
and the output contract of every model: ``pred_instances.birads_scores`` (probabilities of BI-RADS 3, 4, 5,
summing to 1) and ``pred_instances.birads`` (the most probable, 3/4/5)."""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mammo_det.vocab import BIRADS_VALUES

NUM_BIRADS = len(BIRADS_VALUES)
DEFAULT_LOSS = dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)


def birads_classes(birads: Tensor) -> Tensor:
    """BI-RADS values (3/4/5; anything else: none) -> the branch's classes 0/1/2, -1 where there is none."""
    b = birads.long()
    known = (b >= BIRADS_VALUES[0]) & (b <= BIRADS_VALUES[-1])
    return torch.where(known, b - BIRADS_VALUES[0], torch.full_like(b, -1))


def gt_birads(gt_instances) -> Tensor:
    """The classes (0/1/2, -1 without a BI-RADS) of an image's ground-truth boxes."""
    if 'birads' in gt_instances:
        return birads_classes(gt_instances.birads.to(gt_instances.labels.device))
    return torch.full_like(gt_instances.labels, -1)


def birads_loss(loss_module, logits: Tensor, targets: Tensor) -> Tensor:
    """The loss over the entries whose target is >= 0 (positives with a BI-RADS), averaged over them; zero (still
    in the graph, as DDP needs every parameter used) when there are none."""
    valid = targets >= 0
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return loss_module(logits[valid], targets[valid], avg_factor=int(valid.sum()))


def attach_birads(results, logits: Tensor):
    """Sets ``birads_scores`` (softmax of ``logits``) and ``birads`` (3/4/5) on an InstanceData of predictions."""
    probs = F.softmax(logits.float(), dim=-1) if len(logits) else logits.new_zeros((0, NUM_BIRADS))
    results.birads_scores = probs
    results.birads = probs.argmax(dim=-1) + BIRADS_VALUES[0] if len(probs) else \
        probs.new_zeros((0,), dtype=torch.long)
    return results


def fc_tower(in_features: int, width: int, layers: int) -> nn.Sequential:
    """A BI-RADS branch's own tower on pooled features: flatten, then ``layers`` x (fc ``width`` wide, ReLU)."""
    modules: List[nn.Module] = [nn.Flatten()]
    for _ in range(layers):
        modules += [nn.Linear(in_features, width), nn.ReLU(inplace=True)]
        in_features = width
    return nn.Sequential(*modules)


def roi_extractor(channels: int, strides: Sequence[int], roi_size: int) -> nn.Module:
    """mmdet's SingleRoIExtractor with RoIAlign: each box pooled on the pyramid level its size picks."""
    from mmdet.registry import MODELS

    return MODELS.build(dict(type='SingleRoIExtractor', out_channels=channels, featmap_strides=list(strides),
                             roi_layer=dict(type='RoIAlign', output_size=roi_size, sampling_ratio=0)))
