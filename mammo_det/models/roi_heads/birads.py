"""A BI-RADS (3/4/5) classifier on each RoI, for Faster R-CNN and Cascade R-CNN (last stage).

The bbox head keeps its parent's ``forward`` (mmdet's RoI heads unpack exactly ``(cls_score, bbox_pred)``);
a forward hook on its last shared fc keeps the shared RoI features, and ``forward_birads()`` classifies them
without recomputing anything. The RoI heads extend mmdet through ``bbox_loss`` (adds ``loss_birads``) and
``predict_bbox`` (adds ``birads_scores`` and ``birads`` to each result, computed on the final boxes).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.roi_heads import CascadeRoIHead, StandardRoIHead
from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi, scale_boxes
from torch import Tensor, nn

BIRADS_VALUES = (3, 4, 5)


@MODELS.register_module()
class BiradsBBoxHead(Shared2FCBBoxHead):
    """Shared2FCBBoxHead with an extra fc that classifies each RoI's BI-RADS from the shared features.

    Args:
        num_birads: number of BI-RADS classes (3, 4, 5).
        loss_birads: loss config; boxes without BI-RADS and background RoIs are left out of it.
    """

    def __init__(self, *args, num_birads: int = len(BIRADS_VALUES),
                 loss_birads: dict = dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0), **kwargs):
        super().__init__(*args, **kwargs)
        self.num_birads = num_birads
        self.fc_birads = nn.Linear(self.shared_out_channels, num_birads)
        self.loss_birads = MODELS.build(loss_birads)
        self._shared: Optional[Tensor] = None
        self.shared_fcs[-1].register_forward_hook(self._keep_shared)

    def _keep_shared(self, module, inputs, output) -> None:
        self._shared = output

    def forward_birads(self) -> Tensor:
        """BI-RADS logits (N x num_birads) of the RoIs of the last ``forward`` call."""
        if self._shared is None:
            raise RuntimeError('forward_birads() needs a forward() of the RoIs first')
        feats, self._shared = self._shared, None
        # Not self.relu: it is in-place, and the parent's own in-place ReLU may already have run on ``feats``
        # (relu twice is relu once), whose pre-activation values autograd still needs.
        return self.fc_birads(F.relu(feats))

    def birads_loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss over the RoIs whose target is >= 0 (the others: background or no BI-RADS)."""
        valid = targets >= 0
        if not bool(valid.any()):
            return logits.sum() * 0.0  # keeps the branch in the graph (DDP needs every parameter used)
        return self.loss_birads(logits[valid], targets[valid], avg_factor=int(valid.sum()))


def birads_targets(sampling_results, gt_birads: List[Optional[Tensor]]) -> Tensor:
    """Per sampled RoI (positives then negatives, per image): 0/1/2 for BI-RADS 3/4/5, -1 to ignore."""
    out = []
    for res, birads in zip(sampling_results, gt_birads):
        pos = torch.full((len(res.pos_inds),), -1, dtype=torch.long, device=res.pos_inds.device)
        if birads is not None and len(res.pos_inds):
            b = birads.to(pos.device)[res.pos_assigned_gt_inds.long()]
            known = (b >= BIRADS_VALUES[0]) & (b <= BIRADS_VALUES[-1])
            pos = torch.where(known, b - BIRADS_VALUES[0], pos)
        out.append(pos)
        out.append(torch.full((len(res.neg_inds),), -1, dtype=torch.long, device=res.neg_inds.device))
    return torch.cat(out)


class _BiradsMixin:
    """What the Standard and Cascade BI-RADS RoI heads share."""

    _gt_birads: Optional[List[Optional[Tensor]]] = None

    def loss(self, x, rpn_results_list, batch_data_samples):
        # bbox_loss() receives only sampling results, which keep gt indices but not the gt fields: hold the
        # batch's BI-RADS for the duration of this call.
        self._gt_birads = [ds.gt_instances.birads if 'birads' in ds.gt_instances else None
                           for ds in batch_data_samples]
        try:
            return super().loss(x, rpn_results_list, batch_data_samples)
        finally:
            self._gt_birads = None

    def _birads_loss(self, head: BiradsBBoxHead, sampling_results) -> Tensor:
        logits = head.forward_birads()
        gt = self._gt_birads or [None] * len(sampling_results)
        return head.birads_loss(logits, birads_targets(sampling_results, gt))

    def _add_birads(self, x, batch_img_metas: List[dict], results_list, rescale: bool, forward, head):
        """Classifies the final boxes' BI-RADS; ``forward(rois)`` runs the head that owns ``fc_birads``."""
        boxes = []
        for res, meta in zip(results_list, batch_img_metas):
            b = res.bboxes
            if rescale and len(b) and 'scale_factor' in meta:
                b = scale_boxes(b, meta['scale_factor'])  # back to the network input's scale
            boxes.append(b)
        rois = bbox2roi(boxes)
        if rois.shape[0] == 0:
            probs = rois.new_zeros((0, head.num_birads))
        else:
            forward(rois)
            probs = F.softmax(head.forward_birads(), dim=-1)
        for res, p in zip(results_list, probs.split([len(b) for b in boxes])):
            res.birads_scores = p
            res.birads = p.argmax(dim=-1) + BIRADS_VALUES[0] if len(p) else p.new_zeros((0,), dtype=torch.long)
        return results_list


@MODELS.register_module()
class BiradsRoIHead(_BiradsMixin, StandardRoIHead):
    """StandardRoIHead whose bbox head is a :class:`BiradsBBoxHead`: adds ``loss_birads`` and BI-RADS outputs."""

    def bbox_loss(self, x: Tuple[Tensor], sampling_results) -> dict:
        results = super().bbox_loss(x, sampling_results)
        results['loss_bbox']['loss_birads'] = self._birads_loss(self.bbox_head, sampling_results)
        return results

    def predict_bbox(self, x, batch_img_metas, rpn_results_list, rcnn_test_cfg, rescale: bool = False):
        results = super().predict_bbox(x, batch_img_metas, rpn_results_list, rcnn_test_cfg, rescale)
        if rcnn_test_cfg is None:  # raw per-class scores for test-time augmentation: no final boxes yet
            return results
        return self._add_birads(x, batch_img_metas, results, rescale, lambda rois: self._bbox_forward(x, rois),
                                self.bbox_head)


@MODELS.register_module()
class CascadeBiradsRoIHead(_BiradsMixin, CascadeRoIHead):
    """CascadeRoIHead whose last stage's bbox head is a :class:`BiradsBBoxHead`."""

    def bbox_loss(self, stage: int, x: Tuple[Tensor], sampling_results) -> dict:
        results = super().bbox_loss(stage, x, sampling_results)
        if stage == self.num_stages - 1:
            results['loss_bbox']['loss_birads'] = self._birads_loss(self.bbox_head[stage], sampling_results)
        return results

    def predict_bbox(self, x, batch_img_metas, rpn_results_list, rcnn_test_cfg, rescale: bool = False, **kwargs):
        results = super().predict_bbox(x, batch_img_metas, rpn_results_list, rcnn_test_cfg, rescale, **kwargs)
        if rcnn_test_cfg is None:
            return results
        last = self.num_stages - 1
        return self._add_birads(x, batch_img_metas, results, rescale, lambda rois: self._bbox_forward(last, x, rois),
                                self.bbox_head[last])
