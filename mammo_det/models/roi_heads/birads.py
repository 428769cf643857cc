"""A BI-RADS (3/4/5) classifier on each RoI, for Faster R-CNN and Cascade R-CNN (last stage).

The bbox head keeps its parent's ``forward`` (mmdet's RoI heads unpack exactly ``(cls_score, bbox_pred)``). The
RoI heads extend mmdet through its narrow hooks, with no state kept on the modules between calls:

* ``_bbox_forward`` adds ``birads_feats`` to the forward results: the shared RoI features the bbox head computed in
  that same call (caught by :meth:`BiradsBBoxHead.shared_features`, a hook that lives only for the call);
  ``bbox_loss`` adds their logits as ``birads_score``, after the parent's losses, which keeps the autograd graph
  (and so the demo's numbers, to the last bit) as they were;
* the sampler each RoI head builds (``init_assigner_sampler``) is wrapped so that a sampling result also carries
  ``pos_gt_birads``, the ground-truth BI-RADS of its positives, as it carries ``pos_gt_labels``;
* ``bbox_loss`` adds ``loss_birads``; ``predict_bbox`` adds ``birads_scores`` and ``birads`` to each result,
  computed on the final boxes.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, List, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.roi_heads import CascadeRoIHead, StandardRoIHead
from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi, scale_boxes
from torch import Tensor, nn

from ..birads import DEFAULT_LOSS, NUM_BIRADS, attach_birads, birads_classes, birads_loss


@MODELS.register_module()
class BiradsBBoxHead(Shared2FCBBoxHead):
    """Shared2FCBBoxHead with an extra fc that classifies each RoI's BI-RADS from the shared features.

    Args:
        num_birads: number of BI-RADS classes (3, 4, 5).
        loss_birads: loss config; boxes without BI-RADS and background RoIs are left out of it.
    """

    def __init__(self, *args, num_birads: int = NUM_BIRADS, loss_birads: dict = DEFAULT_LOSS, **kwargs):
        super().__init__(*args, **kwargs)
        self.num_birads = num_birads
        self.fc_birads = nn.Linear(self.shared_out_channels, num_birads)
        self.loss_birads = MODELS.build(loss_birads)

    @contextmanager
    def shared_features(self) -> Iterator[List[Tensor]]:
        """Within the block, each forward of this head appends the output of its last shared fc (the RoIs' shared
        features) to the yielded list; the hook is removed on exit."""
        shared: List[Tensor] = []
        handle = self.shared_fcs[-1].register_forward_hook(lambda module, inputs, output: shared.append(output))
        try:
            yield shared
        finally:
            handle.remove()

    def forward_birads(self, shared: Tensor) -> Tensor:
        """BI-RADS logits (N x num_birads) of shared RoI features caught by :meth:`shared_features`."""
        # Not self.relu: it is in-place, and the parent's own in-place ReLU has already run on ``shared`` (relu twice
        # is relu once), whose pre-activation values autograd still needs.
        return self.fc_birads(F.relu(shared))

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
        """Classifies the final boxes' BI-RADS; ``forward(rois)`` returns forward results with ``birads_feats``."""
        boxes = []
        for res, meta in zip(results_list, batch_img_metas):
            b = res.bboxes
            if rescale and len(b) and 'scale_factor' in meta:
                b = scale_boxes(b, meta['scale_factor'])  # back to the network input's scale
            boxes.append(b)
        rois = bbox2roi(boxes)
        logits = rois.new_zeros((0, NUM_BIRADS)) if rois.shape[0] == 0 else \
            head.forward_birads(forward(rois)['birads_feats'])
        for res, lg in zip(results_list, logits.split([len(b) for b in boxes])):
            attach_birads(res, lg)
        return results_list


@MODELS.register_module()
class BiradsRoIHead(_BiradsMixin, StandardRoIHead):
    """StandardRoIHead whose bbox head is a :class:`BiradsBBoxHead`: adds ``loss_birads`` and BI-RADS outputs."""

    def _bbox_forward(self, x: Tuple[Tensor], rois: Tensor) -> dict:
        with self.bbox_head.shared_features() as shared:
            results = super()._bbox_forward(x, rois)
        results['birads_feats'] = shared[0]
        return results

    def bbox_loss(self, x: Tuple[Tensor], sampling_results) -> dict:
        results = super().bbox_loss(x, sampling_results)
        results['birads_score'] = self.bbox_head.forward_birads(results['birads_feats'])
        results['loss_bbox']['loss_birads'] = self.bbox_head.birads_loss(results['birads_score'],
                                                                         birads_targets(sampling_results))
        return results

    def predict_bbox(self, x, batch_img_metas, rpn_results_list, rcnn_test_cfg, rescale: bool = False):
        results = super().predict_bbox(x, batch_img_metas, rpn_results_list, rcnn_test_cfg, rescale)
        if rcnn_test_cfg is None:  # raw per-class scores for test-time augmentation: no final boxes yet
            return results
        return self._add_birads(batch_img_metas, results, rescale, lambda rois: self._bbox_forward(x, rois),
                                self.bbox_head)


@MODELS.register_module()
class CascadeBiradsRoIHead(_BiradsMixin, CascadeRoIHead):
    """CascadeRoIHead whose last stage's bbox head is a :class:`BiradsBBoxHead`."""

    def _bbox_forward(self, stage: int, x: Tuple[Tensor], rois: Tensor) -> dict:
        head = self.bbox_head[stage]
        if not isinstance(head, BiradsBBoxHead):
            return super()._bbox_forward(stage, x, rois)
        with head.shared_features() as shared:
            results = super()._bbox_forward(stage, x, rois)
        results['birads_feats'] = shared[0]
        return results

    def bbox_loss(self, stage: int, x: Tuple[Tensor], sampling_results) -> dict:
        results = super().bbox_loss(stage, x, sampling_results)
        if 'birads_feats' in results:
            head = self.bbox_head[stage]
            results['birads_score'] = head.forward_birads(results['birads_feats'])
            results['loss_bbox']['loss_birads'] = head.birads_loss(results['birads_score'],
                                                                   birads_targets(sampling_results))
        return results

    def predict_bbox(self, x, batch_img_metas, rpn_results_list, rcnn_test_cfg, rescale: bool = False, **kwargs):
        results = super().predict_bbox(x, batch_img_metas, rpn_results_list, rcnn_test_cfg, rescale, **kwargs)
        if rcnn_test_cfg is None:
            return results
        last = self.num_stages - 1
        return self._add_birads(batch_img_metas, results, rescale, lambda rois: self._bbox_forward(last, x, rois),
                                self.bbox_head[last])
