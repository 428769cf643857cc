"""A BI-RADS (3/4/5) classifier on each RoI, for Faster R-CNN and Cascade R-CNN (last stage).

The bbox head keeps its parent's ``forward`` (mmdet's RoI heads unpack exactly ``(cls_score, bbox_pred)``); its
BI-RADS branch is a tower of its own (fcs beside the shared ones, as the dense heads' branch is a conv stack beside
their towers) on the RoI features the RoI head pooled for it, which mmdet's ``_bbox_forward`` returns as
``bbox_feats``. The RoI heads extend mmdet through its narrow hooks, with no state kept on the modules between calls:

* the sampler each RoI head builds (``init_assigner_sampler``) is wrapped so that a sampling result also carries
  ``pos_gt_birads``, the ground-truth BI-RADS of its positives, as it carries ``pos_gt_labels``;
* ``bbox_loss`` adds ``birads_score`` (the logits of the sampled RoIs) and ``loss_birads``, after the parent's
  losses; the RoI features are detached by default, so the detector learns exactly as it would without the branch;
* ``predict_bbox`` adds ``birads_scores`` and ``birads`` to each result, computed on the final boxes.

A :class:`BiradsBBoxHead` built with ``with_birads=False`` makes both RoI heads mmdet's own.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
from mmdet.models.roi_heads import CascadeRoIHead, StandardRoIHead
from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi, scale_boxes
from torch import Tensor, nn

from ..birads import DEFAULT_LOSS, NUM_BIRADS, attach_birads, birads_classes, birads_loss, fc_tower


@MODELS.register_module()
class BiradsBBoxHead(Shared2FCBBoxHead):
    """Shared2FCBBoxHead with a BI-RADS branch: fcs of its own on each RoI's pooled features, then a classifier.

    Args:
        num_birads: number of BI-RADS classes (3, 4, 5).
        birads_fcs: fully connected layers of the branch before its classifier, each ``fc_out_channels`` wide.
        loss_birads: loss config; boxes without BI-RADS and background RoIs are left out of it.
        with_birads: build and use the branch (False: the parent head exactly, and the RoI heads below are mmdet's).
        detach_features: the BI-RADS loss trains the branch alone, not the RoI features it reads (the detector then
            learns exactly as without it); False lets it shape them too.
    """

    def __init__(self, *args, num_birads: int = NUM_BIRADS, birads_fcs: int = 2, loss_birads: dict = DEFAULT_LOSS,
                 with_birads: bool = True, detach_features: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.num_birads = num_birads
        self.with_birads = with_birads
        self.detach_features = detach_features
        if with_birads:
            self.birads_fcs = fc_tower(self.in_channels * self.roi_feat_area, self.fc_out_channels, birads_fcs)
            width = self.fc_out_channels if birads_fcs else self.in_channels * self.roi_feat_area
            self.fc_birads = nn.Linear(width, num_birads)
            self.loss_birads = MODELS.build(loss_birads)

    def forward_birads(self, roi_feats: Tensor) -> Tensor:
        """BI-RADS logits (N x num_birads) of RoI features (N x in_channels x roi size x roi size)."""
        return self.fc_birads(self.birads_fcs(roi_feats.detach() if self.detach_features else roi_feats))

    def birads_loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss over the RoIs whose target is >= 0 (the others: background or no BI-RADS)."""
        return birads_loss(self.loss_birads, logits, targets)


class BiradsSampler:
    """Wraps a sampler: its sampling results also carry ``pos_gt_birads`` (the positives' ground-truth BI-RADS,
    -1 where the box has none), taken from ``gt_instances.birads`` through ``pos_assigned_gt_inds``."""

    def __init__(self, sampler):
        self.sampler = sampler

    def sample(self, assign_result, pred_instances, gt_instances, **kwargs):
        result = self.sampler.sample(assign_result, pred_instances, gt_instances, **kwargs)
        idx = result.pos_assigned_gt_inds.long()
        if 'birads' in gt_instances and len(idx):
            result.pos_gt_birads = gt_instances.birads.to(idx.device)[idx]
        else:
            result.pos_gt_birads = torch.full_like(idx, -1)
        return result


def birads_targets(sampling_results) -> Tensor:
    """Per sampled RoI (positives then negatives, per image): 0/1/2 for BI-RADS 3/4/5, -1 to ignore."""
    out = []
    for res in sampling_results:
        out.append(birads_classes(res.pos_gt_birads))
        out.append(torch.full((len(res.neg_inds),), -1, dtype=torch.long, device=res.neg_inds.device))
    return torch.cat(out)


class _BiradsMixin:
    """What the Standard and Cascade BI-RADS RoI heads share."""

    def init_assigner_sampler(self, *args, **kwargs) -> None:
        super().init_assigner_sampler(*args, **kwargs)
        if isinstance(self.bbox_sampler, list):
            self.bbox_sampler = [BiradsSampler(s) for s in self.bbox_sampler]
        elif self.bbox_sampler is not None:
            self.bbox_sampler = BiradsSampler(self.bbox_sampler)

    def _add_birads(self, batch_img_metas: List[dict], results_list, rescale: bool, forward, head):
        """Classifies the final boxes' BI-RADS; ``forward(rois)`` returns mmdet's forward results (``bbox_feats``:
        the RoI features)."""
        boxes = []
        for res, meta in zip(results_list, batch_img_metas):
            b = res.bboxes
            if rescale and len(b) and 'scale_factor' in meta:
                b = scale_boxes(b, meta['scale_factor'])  # back to the network input's scale
            boxes.append(b)
        rois = bbox2roi(boxes)
        logits = rois.new_zeros((0, NUM_BIRADS)) if rois.shape[0] == 0 else \
            head.forward_birads(forward(rois)['bbox_feats'])
        for res, lg in zip(results_list, logits.split([len(b) for b in boxes])):
            attach_birads(res, lg)
        return results_list


def _classifies(head) -> bool:
    """Whether a bbox head classifies BI-RADS (a :class:`BiradsBBoxHead` built ``with_birads``)."""
    return isinstance(head, BiradsBBoxHead) and head.with_birads


def _add_birads_loss(results: dict, head: BiradsBBoxHead, sampling_results) -> None:
    """``birads_score`` and ``loss_bbox['loss_birads']`` of the sampled RoIs, into mmdet's bbox loss results."""
    results['birads_score'] = head.forward_birads(results['bbox_feats'])
    results['loss_bbox']['loss_birads'] = head.birads_loss(results['birads_score'], birads_targets(sampling_results))


@MODELS.register_module()
class BiradsRoIHead(_BiradsMixin, StandardRoIHead):
    """StandardRoIHead whose bbox head is a :class:`BiradsBBoxHead`: adds ``loss_birads`` and BI-RADS outputs."""

    def bbox_loss(self, x: Tuple[Tensor], sampling_results) -> dict:
        results = super().bbox_loss(x, sampling_results)
        if _classifies(self.bbox_head):
            _add_birads_loss(results, self.bbox_head, sampling_results)
        return results

    def predict_bbox(self, x, batch_img_metas, rpn_results_list, rcnn_test_cfg, rescale: bool = False):
        results = super().predict_bbox(x, batch_img_metas, rpn_results_list, rcnn_test_cfg, rescale)
        if rcnn_test_cfg is None or not _classifies(self.bbox_head):  # None: raw scores for test-time augmentation
            return results
        return self._add_birads(batch_img_metas, results, rescale, lambda rois: self._bbox_forward(x, rois),
                                self.bbox_head)


@MODELS.register_module()
class CascadeBiradsRoIHead(_BiradsMixin, CascadeRoIHead):
    """CascadeRoIHead whose last stage's bbox head is a :class:`BiradsBBoxHead`."""

    def bbox_loss(self, stage: int, x: Tuple[Tensor], sampling_results) -> dict:
        results = super().bbox_loss(stage, x, sampling_results)
        if _classifies(self.bbox_head[stage]):
            _add_birads_loss(results, self.bbox_head[stage], sampling_results)
        return results

    def predict_bbox(self, x, batch_img_metas, rpn_results_list, rcnn_test_cfg, rescale: bool = False, **kwargs):
        results = super().predict_bbox(x, batch_img_metas, rpn_results_list, rcnn_test_cfg, rescale, **kwargs)
        last = self.num_stages - 1
        if rcnn_test_cfg is None or not _classifies(self.bbox_head[last]):
            return results
        return self._add_birads(batch_img_metas, results, rescale, lambda rois: self._bbox_forward(last, x, rois),
                                self.bbox_head[last])
