"""A BI-RADS (3/4/5) branch for the dense one-stage heads: RetinaNet and FCOS.

As MMDetection3D's FCOS3D attribute branch: a small conv stack beside the classification tower, on each pyramid
level, predicting a BI-RADS per prior (anchor or point). The parent head is untouched:

* training: each prior's target is the BI-RADS of the ground-truth box it is assigned to, exactly as its class
  target is. The assignment is read from the parent's own target computation (``_get_targets_single``), run a
  second time on the boxes' indices as labels while the parent's ``loss`` runs; priors assigned to no box, or to a
  box without a BI-RADS, give no loss;
* inference: the BI-RADS logits ride through the parent's score filter and NMS as one more per-prior tensor
  (``filter_scores_and_topk(..., results=...)`` and ``InstanceData`` indexing), so every kept box has the
  probabilities of its own prior. ``with_birads=False`` is the parent head, unchanged.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator, List, Tuple

import torch
from mmcv.cnn import ConvModule
from mmdet.models.dense_heads import FCOSHead, RetinaHead
from mmdet.models.utils import filter_scores_and_topk, unpack_gt_instances
from mmdet.registry import MODELS
from mmdet.structures.bbox import cat_boxes
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ..birads import DEFAULT_LOSS, NUM_BIRADS, attach_birads, birads_loss, gt_birads, targets_of_assigned


class DenseBiradsMixin:
    """The BI-RADS branch of a dense head (put before the mmdet head class in the bases).

    Args:
        with_birads: build and use the branch (False: the parent head exactly).
        birads_convs: 3x3 convs of the branch's stack before its output conv.
        loss_birads: loss config (cross-entropy over the positives with a BI-RADS).
        detach_features: the BI-RADS loss trains the branch alone, not the pyramid features it reads (which then
            learn exactly as without the branch); False lets it shape them too.
    """

    score_factor_channels = 0  # leading channels of the packed score factors the parent uses (FCOS: centerness)

    def __init__(self, *args, with_birads: bool = True, birads_convs: int = 2, loss_birads: dict = DEFAULT_LOSS,
                 detach_features: bool = True, **kwargs):
        self.with_birads = with_birads
        self.detach_features = detach_features
        self.birads_convs_num = birads_convs
        super().__init__(*args, **kwargs)
        if with_birads:
            self.loss_birads = MODELS.build(loss_birads)

    def _init_layers(self) -> None:
        super()._init_layers()
        if not self.with_birads:
            return
        self.birads_convs = nn.Sequential(*[
            ConvModule(self.in_channels if i == 0 else self.feat_channels, self.feat_channels, 3, padding=1,
                       conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg) for i in range(self.birads_convs_num)])
        width = self.feat_channels if self.birads_convs_num else self.in_channels
        self.conv_birads = nn.Conv2d(width, self.num_base_priors * NUM_BIRADS, 3, padding=1)

    def birads_maps(self, x: Tuple[Tensor]) -> List[Tensor]:
        """BI-RADS logits of each level, (N, priors per location x 3, H, W)."""
        return [self.conv_birads(self.birads_convs(f.detach() if self.detach_features else f)) for f in x]

    @staticmethod
    def flatten_priors(maps: List[Tensor]) -> Tensor:
        """(N, A x 3, H, W) per level -> (N, all priors, 3), priors ordered as the heads flatten them (level, y, x,
        anchor)."""
        return torch.cat([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, NUM_BIRADS) for m in maps], dim=1)

    @contextmanager
    def recording_assignments(self) -> Iterator[List[Tensor]]:
        """Within the block, each call of ``_get_targets_single`` (one per image, in order) also appends, per prior,
        the index of the ground-truth box it is assigned to (-1: background). The parent computes its targets as
        always; a second run on the boxes' indices as labels gives the index where its labels give the class."""
        assigned: List[Tensor] = []
        single = self._get_targets_single

        def record(*args, **kwargs):
            out = single(*args, **kwargs)
            k = next(i for i, a in enumerate(args) if isinstance(a, InstanceData))
            gt = args[k]
            probe = gt.new()  # the same boxes (and fields), the boxes' indices as labels
            probe.labels = torch.arange(len(gt), device=gt.labels.device)
            index = single(*args[:k], probe, *args[k + 1:], **kwargs)[0]
            labels = out[0]
            assigned.append(torch.where((labels >= 0) & (labels < self.num_classes), index, -1))
            return out

        self._get_targets_single = record
        try:
            yield assigned
        finally:
            del self._get_targets_single  # the class's method again

    def loss(self, x: Tuple[Tensor], batch_data_samples) -> dict:
        if not self.with_birads:
            return super().loss(x, batch_data_samples)
        with self.recording_assignments() as assigned:
            losses = super().loss(x, batch_data_samples)
        batch_gt_instances = unpack_gt_instances(batch_data_samples)[0]
        logits = self.flatten_priors(self.birads_maps(x))
        targets = torch.stack([targets_of_assigned(a, gt_birads(g)) for a, g in zip(assigned, batch_gt_instances)])
        losses['loss_birads'] = birads_loss(self.loss_birads, logits.reshape(-1, NUM_BIRADS), targets.reshape(-1))
        return losses

    def predict(self, x: Tuple[Tensor], batch_data_samples, rescale: bool = False):
        if not self.with_birads:
            return super().predict(x, batch_data_samples, rescale=rescale)
        outs = self(x)
        birads = self.birads_maps(x)
        # The BI-RADS maps travel as (further) score factors: the parent's predict_by_feat selects them per image.
        factors = [torch.cat([f, b], 1) for f, b in zip(outs[2], birads)] if self.score_factor_channels else birads
        return self.predict_by_feat(outs[0], outs[1], score_factors=factors,
                                    batch_img_metas=[s.metainfo for s in batch_data_samples], rescale=rescale)

    def _predict_by_feat_single(self, cls_score_list, bbox_pred_list, score_factor_list, mlvl_priors, img_meta,
                                cfg=None, rescale: bool = False, with_nms: bool = True) -> InstanceData:
        """mmdet's per-image decoding (``BaseDenseHead._predict_by_feat_single``, which has no place for another
        per-prior output) with the BI-RADS logits carried through the score filter and NMS beside the boxes."""
        if not self.with_birads:
            return super()._predict_by_feat_single(cls_score_list, bbox_pred_list, score_factor_list, mlvl_priors,
                                                   img_meta, cfg, rescale, with_nms)
        cfg = copy.deepcopy(self.test_cfg if cfg is None else cfg)
        nms_pre, score_thr = cfg.get('nms_pre', -1), cfg.get('score_thr', 0)
        keep = dict(bbox_pred=[], priors=[], birads=[], scores=[], labels=[], score_factors=[])
        for cls_score, bbox_pred, factors, priors in zip(cls_score_list, bbox_pred_list, score_factor_list,
                                                          mlvl_priors):
            bbox_pred = bbox_pred.permute(1, 2, 0).reshape(-1, self.bbox_coder.encode_size)
            cls_score = cls_score.permute(1, 2, 0).reshape(-1, self.cls_out_channels)
            scores = cls_score.sigmoid() if self.use_sigmoid_cls else cls_score.softmax(-1)[:, :-1]
            factors = factors.permute(1, 2, 0)
            birads = factors[..., self.score_factor_channels:].reshape(-1, NUM_BIRADS)
            scores, labels, keep_idxs, kept = filter_scores_and_topk(
                scores, score_thr, nms_pre, dict(bbox_pred=bbox_pred, priors=priors, birads=birads))
            for key in ('bbox_pred', 'priors', 'birads'):
                keep[key].append(kept[key])
            keep['scores'].append(scores)
            keep['labels'].append(labels)
            if self.score_factor_channels:
                keep['score_factors'].append(factors[..., 0].reshape(-1).sigmoid()[keep_idxs])
        results = InstanceData()
        results.bboxes = self.bbox_coder.decode(cat_boxes(keep['priors']), torch.cat(keep['bbox_pred']),
                                                max_shape=img_meta['img_shape'])
        results.scores = torch.cat(keep['scores'])
        results.labels = torch.cat(keep['labels'])
        results.birads_logits = torch.cat(keep['birads'])
        if self.score_factor_channels:
            results.score_factors = torch.cat(keep['score_factors'])
        results = self._bbox_post_process(results=results, cfg=cfg, rescale=rescale, with_nms=with_nms,
                                          img_meta=img_meta)
        return attach_birads(results, results.pop('birads_logits'))


@MODELS.register_module()
class BiradsRetinaHead(DenseBiradsMixin, RetinaHead):
    """RetinaHead with a BI-RADS branch per anchor (see :class:`DenseBiradsMixin`)."""


@MODELS.register_module()
class BiradsFCOSHead(DenseBiradsMixin, FCOSHead):
    """FCOSHead with a BI-RADS branch per point (see :class:`DenseBiradsMixin`); the centerness stays the score
    factor it is in FCOS."""

    score_factor_channels = 1

