"""A BI-RADS (3/4/5) branch for the DETR family: Deformable DETR and DINO.

Each query's BI-RADS is read from the neck's feature maps pooled inside the box the query predicts (RoIAlign, then
a tower of fcs shared by the decoder layers), with one output layer per decoder layer (deep supervision, as the class
branches have). The decoder states alone do not do: trained for the finding type and the box, they hold too little
of a lesion's margin and density (measured: a branch on them, with the gradient stopped, learned nothing beyond the
most frequent BI-RADS). The feature maps come from :class:`~mammo_det.models.detectors.BiradsDINO` or
``BiradsDeformableDETR``, mmdet's detectors that also hand the neck's output to the head.

* training: a query's target is the BI-RADS of the ground-truth box the Hungarian matcher gave it, read from the
  head's own assigner while the parent's loss runs (a proxy records each ``assign`` call: decoder layers in order,
  images in order); unmatched queries and boxes without a BI-RADS give no loss (and are not pooled). DINO's
  denoising queries are supervised too: their box is known by construction, and the parent's
  ``_get_dn_targets_single`` run on the boxes' indices as labels says which. Losses: ``loss_birads`` (last layer),
  ``d0.loss_birads`` ..., and ``dn_loss_birads``, ``d0.dn_loss_birads`` ... for DINO;
* inference: each kept box gets the probabilities of the query the parent's top-k over query x class selected,
  pooled inside that query's box.

``with_birads=False`` is the parent head, unchanged.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import DeformableDETRHead, DINOHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi, bbox_cxcywh_to_xyxy
from torch import Tensor, nn

from ..birads import (DEFAULT_LOSS, NUM_BIRADS, attach_birads, birads_loss, fc_tower, gt_birads, roi_extractor,
                      targets_of_assigned)


class _RecordingAssigner:
    """The head's assigner, also recording each result's matched box per query (-1: none)."""

    def __init__(self, assigner, record: list):
        self.assigner, self.record = assigner, record

    def assign(self, *args, **kwargs):
        result = self.assigner.assign(*args, **kwargs)
        self.record.append(torch.where(result.gt_inds > 0, result.gt_inds - 1, -1))
        return result

    def __getattr__(self, name):
        return getattr(self.assigner, name)


class DetrBiradsMixin:
    """The BI-RADS branches of a Deformable-DETR-style head (put before the mmdet head class in the bases).

    Args:
        with_birads: build and use the branches (False: the parent head exactly).
        birads_fcs: fcs (+ ReLU) of the tower on the pooled features, ``birads_fc_channels`` wide.
        birads_roi_size: RoIAlign output size.
        loss_birads: loss config (cross-entropy over the matched queries whose box has a BI-RADS).
        detach_features: the BI-RADS loss trains the branch alone, not the feature maps it pools (the detector then
            learns exactly as without it); False lets it shape them too.
    """

    def __init__(self, *args, with_birads: bool = True, birads_fcs: int = 2, birads_fc_channels: int = 256,
                 birads_roi_size: int = 7, loss_birads: dict = DEFAULT_LOSS, detach_features: bool = True, **kwargs):
        self.with_birads = with_birads
        self.birads_fcs, self.birads_fc_channels, self.birads_roi_size = birads_fcs, birads_fc_channels, birads_roi_size
        self.detach_features = detach_features
        super().__init__(*args, **kwargs)
        self._extractors: Dict[Tuple[int, ...], nn.Module] = {}  # RoIAlign per pyramid (no weights), built on use
        if with_birads:
            self.loss_birads = MODELS.build(loss_birads)

    def _init_layers(self) -> None:
        super()._init_layers()
        if not self.with_birads:
            return
        width = self.embed_dims * self.birads_roi_size ** 2
        self.birads_tower = fc_tower(width, self.birads_fc_channels, self.birads_fcs)
        width = self.birads_fc_channels if self.birads_fcs else width
        # one output layer per decoder layer (the parent's last class branch scores the two-stage encoder's proposals)
        layers = self.num_pred_layer - (1 if self.as_two_stage else 0)
        self.birads_branches = nn.ModuleList([nn.Linear(width, NUM_BIRADS) for _ in range(layers)])

    def forward(self, hidden_states: Tensor, references: List[Tensor], birads_feats=None):
        """The parent's forward (``birads_feats``, handed over by the BI-RADS detectors, is for loss and predict)."""
        return super().forward(hidden_states, references)

    def _pool(self, feats: Sequence[Tensor], rois: Tensor, batch_input_shape: Sequence[int]) -> Tensor:
        """RoIAlign of ``rois`` on the pyramid, each box on the level its size picks (mmdet's SingleRoIExtractor);
        the strides are read off the maps' sizes (powers of 2)."""
        strides = tuple(2 ** round(math.log2(batch_input_shape[0] / f.shape[-2])) for f in feats)
        if strides not in self._extractors:
            self._extractors[strides] = roi_extractor(self.embed_dims, strides, self.birads_roi_size)
        return self._extractors[strides](tuple(feats), rois)

    def query_logits(self, layer: int, feats: Sequence[Tensor], boxes: List[Tensor], batch_img_metas: List[dict]):
        """BI-RADS logits (all boxes, 3) from decoder layer ``layer``'s output, of queries' boxes given per image as
        the head predicts them (normalised cx, cy, w, h of the image)."""
        if feats is None:
            raise ValueError(f'{type(self).__name__} needs the neck\'s feature maps: build the detector as '
                             "BiradsDINO or BiradsDeformableDETR (type='BiradsDINO' in the model config)")
        pixels = []
        for b, meta in zip(boxes, batch_img_metas):
            h, w = meta['img_shape'][:2]
            pixels.append(bbox_cxcywh_to_xyxy(b.detach()) * b.new_tensor([w, h, w, h]))
        feats = [f.detach() for f in feats] if self.detach_features else feats
        pooled = self._pool(feats, bbox2roi(pixels), batch_img_metas[0]['batch_input_shape'])
        return self.birads_branches[layer](self.birads_tower(pooled))

    @contextmanager
    def recording_assignments(self) -> Iterator[List[Tensor]]:
        """Within the block, every Hungarian assignment the parent makes is recorded (per call: the matched box of
        each query, -1 for none), in the parent's order: decoder layers, then images (then the encoder's)."""
        record: List[Tensor] = []
        assigner = self.assigner
        self.assigner = _RecordingAssigner(assigner, record)
        try:
            yield record
        finally:
            self.assigner = assigner

    def _dn_assigned(self, batch_gt_instances, batch_img_metas, dn_meta: dict) -> List[Tensor]:
        """Per image, the box each denoising query reconstructs (-1: a negative query), from the parent's
        ``_get_dn_targets_single`` run with the boxes' indices as labels."""
        out = []
        for gt, meta in zip(batch_gt_instances, batch_img_metas):
            labels = self._get_dn_targets_single(gt, meta, dn_meta)[0]
            probe = gt.new()
            probe.labels = torch.arange(len(gt), device=gt.labels.device)
            index = self._get_dn_targets_single(probe, meta, dn_meta)[0]
            out.append(torch.where(labels < self.num_classes, index, -1))
        return out

    def _layer_losses(self, coords: Tensor, assigned: List[List[Tensor]], batch_gt_instances, feats,
                      batch_img_metas, name: str) -> dict:
        """``name`` for the last layer, ``d{k}.{name}`` for the others: the loss of each layer's queries assigned
        to a box with a BI-RADS (``coords``: the layers' boxes of those queries, (layers, bs, queries, 4))."""
        classes = [gt_birads(g) for g in batch_gt_instances]
        out = {}
        for k, layer in enumerate(coords):
            targets = [targets_of_assigned(a, c) for a, c in zip(assigned[k], classes)]
            logits = self.query_logits(k, feats, [b[t >= 0] for b, t in zip(layer, targets)], batch_img_metas)
            known = torch.cat([t[t >= 0] for t in targets])
            key = name if k == len(coords) - 1 else f'd{k}.{name}'
            out[key] = birads_loss(self.loss_birads, logits, known)
        return out

    def loss(self, hidden_states: Tensor, references, *args, birads_feats=None, **kwargs) -> dict:
        if not self.with_birads:
            return super().loss(hidden_states, references, *args, **kwargs)
        with self.recording_assignments() as record:
            losses = super().loss(hidden_states, references, *args, **kwargs)
        batch_data_samples = args[2] if len(args) > 2 else kwargs['batch_data_samples']
        dn_meta: Optional[dict] = args[3] if len(args) > 3 else kwargs.get('dn_meta')
        batch_gt_instances = [s.gt_instances for s in batch_data_samples]
        metas = [s.metainfo for s in batch_data_samples]
        coords = super().forward(hidden_states, references)[1]  # each layer's boxes, as the parent's loss saw them
        if dn_meta is not None:
            n_dn = dn_meta['num_denoising_queries']
            dn_coords, coords = coords[:, :, :n_dn], coords[:, :, n_dn:]
            dn = self._dn_assigned(batch_gt_instances, metas, dn_meta)
            losses.update(self._layer_losses(dn_coords, [dn] * len(dn_coords), batch_gt_instances, birads_feats,
                                             metas, 'dn_loss_birads'))
        n_img = len(batch_gt_instances)
        per_layer = [record[k * n_img:(k + 1) * n_img] for k in range(len(coords))]
        losses.update(self._layer_losses(coords, per_layer, batch_gt_instances, birads_feats, metas, 'loss_birads'))
        return losses

    def kept_queries(self, cls_score: Tensor) -> Tensor:
        """The query of each box the parent's ``_predict_by_feat_single`` keeps, by its own top-k rule."""
        max_per_img = self.test_cfg.get('max_per_img', len(cls_score))
        if self.loss_cls.use_sigmoid:
            return cls_score.sigmoid().view(-1).topk(max_per_img)[1] // self.num_classes
        return F.softmax(cls_score, dim=-1)[..., :-1].max(-1)[0].topk(max_per_img)[1]

    def predict(self, hidden_states: Tensor, references, batch_data_samples, rescale: bool = True,
                birads_feats=None):
        results = super().predict(hidden_states, references, batch_data_samples, rescale=rescale)
        if not self.with_birads:
            return results
        cls_scores, coords = super().forward(hidden_states, references)  # what the parent's last layer scored
        kept = [self.kept_queries(c) for c in cls_scores[-1]]
        logits = self.query_logits(len(coords) - 1, birads_feats, [b[q] for b, q in zip(coords[-1], kept)],
                                   [s.metainfo for s in batch_data_samples])
        for res, lg in zip(results, logits.split([len(q) for q in kept])):
            attach_birads(res, lg)
        return results


@MODELS.register_module()
class BiradsDeformableDETRHead(DetrBiradsMixin, DeformableDETRHead):
    """DeformableDETRHead with a BI-RADS branch per decoder layer (see :class:`DetrBiradsMixin`)."""


@MODELS.register_module()
class BiradsDINOHead(DetrBiradsMixin, DINOHead):
    """DINOHead with a BI-RADS branch per decoder layer, on the matching and the denoising queries."""
