"""A BI-RADS (3/4/5) branch for the DETR family: Deformable DETR and DINO.

One linear branch per decoder layer beside the class branches (deep supervision, as they have):

* training: a query's target is the BI-RADS of the ground-truth box the Hungarian matcher gave it, read from the
  head's own assigner while the parent's loss runs (a proxy records each ``assign`` call: decoder layers in order,
  images in order); unmatched queries and boxes without a BI-RADS give no loss. DINO's denoising queries are
  supervised too: their box is known by construction, and the parent's ``_get_dn_targets_single`` run on the boxes'
  indices as labels says which. Losses: ``loss_birads`` (last layer), ``d0.loss_birads`` ..., and
  ``dn_loss_birads``, ``d0.dn_loss_birads`` ... for DINO;
* inference: each kept box gets the probabilities of the query the parent's top-k over query x class selected.

``with_birads=False`` is the parent head, unchanged.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, List, Optional

import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import DeformableDETRHead, DINOHead
from mmdet.registry import MODELS
from torch import Tensor, nn

from ..birads import DEFAULT_LOSS, NUM_BIRADS, attach_birads, birads_loss, gt_birads, targets_of_assigned


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
        loss_birads: loss config (cross-entropy over the matched queries whose box has a BI-RADS).
    """

    def __init__(self, *args, with_birads: bool = True, loss_birads: dict = DEFAULT_LOSS, **kwargs):
        self.with_birads = with_birads
        super().__init__(*args, **kwargs)
        if with_birads:
            self.loss_birads = MODELS.build(loss_birads)

    def _init_layers(self) -> None:
        super()._init_layers()
        if self.with_birads:
            # one per decoder layer (the parent's last class branch scores the two-stage encoder's proposals)
            layers = self.num_pred_layer - (1 if self.as_two_stage else 0)
            self.birads_branches = nn.ModuleList([nn.Linear(self.embed_dims, NUM_BIRADS) for _ in range(layers)])

    def birads_logits(self, hidden_states: Tensor) -> Tensor:
        """(decoder layers, bs, queries, 3) from the decoder's hidden states."""
        return torch.stack([self.birads_branches[k](h) for k, h in enumerate(hidden_states)])

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

    def _layer_losses(self, logits: Tensor, assigned: List[List[Tensor]], batch_gt_instances, name: str) -> dict:
        """``name`` for the last layer, ``d{k}.{name}`` for the others: the loss of each layer's matched queries."""
        classes = [gt_birads(g) for g in batch_gt_instances]
        out = {}
        for k, layer in enumerate(logits):
            targets = torch.cat([targets_of_assigned(a, c) for a, c in zip(assigned[k], classes)])
            key = name if k == len(logits) - 1 else f'd{k}.{name}'
            out[key] = birads_loss(self.loss_birads, layer.reshape(-1, NUM_BIRADS), targets)
        return out

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

    def loss(self, hidden_states: Tensor, references, *args, **kwargs) -> dict:
        if not self.with_birads:
            return super().loss(hidden_states, references, *args, **kwargs)
        with self.recording_assignments() as record:
            losses = super().loss(hidden_states, references, *args, **kwargs)
        batch_data_samples = args[2] if len(args) > 2 else kwargs['batch_data_samples']
        dn_meta: Optional[dict] = args[3] if len(args) > 3 else kwargs.get('dn_meta')
        batch_gt_instances = [s.gt_instances for s in batch_data_samples]
        logits = self.birads_logits(hidden_states)
        if dn_meta is not None:
            n_dn = dn_meta['num_denoising_queries']
            dn_logits, logits = logits[:, :, :n_dn], logits[:, :, n_dn:]
            dn = self._dn_assigned(batch_gt_instances, [s.metainfo for s in batch_data_samples], dn_meta)
            losses.update(self._layer_losses(dn_logits, [dn] * len(dn_logits), batch_gt_instances,
                                             'dn_loss_birads'))
        n_img = len(batch_gt_instances)
        per_layer = [record[k * n_img:(k + 1) * n_img] for k in range(len(logits))]
        losses.update(self._layer_losses(logits, per_layer, batch_gt_instances, 'loss_birads'))
        return losses

    def kept_queries(self, cls_score: Tensor) -> Tensor:
        """The query of each box the parent's ``_predict_by_feat_single`` keeps, by its own top-k rule."""
        max_per_img = self.test_cfg.get('max_per_img', len(cls_score))
        if self.loss_cls.use_sigmoid:
            return cls_score.sigmoid().view(-1).topk(max_per_img)[1] // self.num_classes
        return F.softmax(cls_score, dim=-1)[..., :-1].max(-1)[0].topk(max_per_img)[1]

    def predict(self, hidden_states: Tensor, references, batch_data_samples, rescale: bool = True):
        results = super().predict(hidden_states, references, batch_data_samples, rescale=rescale)
        if not self.with_birads:
            return results
        last = hidden_states[-1]
        cls_scores = self.cls_branches[len(hidden_states) - 1](last)  # what the parent's last layer scored
        logits = self.birads_branches[len(hidden_states) - 1](last)
        for res, cls_score, layer_logits in zip(results, cls_scores, logits):
            attach_birads(res, layer_logits[self.kept_queries(cls_score)])
        return results


@MODELS.register_module()
class BiradsDeformableDETRHead(DetrBiradsMixin, DeformableDETRHead):
    """DeformableDETRHead with a BI-RADS branch per decoder layer (see :class:`DetrBiradsMixin`)."""


@MODELS.register_module()
class BiradsDINOHead(DetrBiradsMixin, DINOHead):
    """DINOHead with a BI-RADS branch per decoder layer, on the matching and the denoising queries."""
