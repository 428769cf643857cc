"""A BI-RADS classifier of boxes that come from anywhere: a backbone, a neck and :class:`RoIBiradsHead`.

It learns on a converted dataset's ground-truth boxes that have a BI-RADS (and jittered copies of them), so it is
trained once, and then gives any detector's boxes (another framework's, imported with ``mammo-det import-preds``)
the same ``birads_scores`` / ``birads`` as the project's own detectors: ``mammo-det birads apply``. At test time
each sample's boxes are its ``proposals`` (in the loaded image's pixels) when it carries them, else its
ground-truth boxes, so ``tools/test.py`` on a classifier config scores it on the test split's own boxes.
"""
from __future__ import annotations

from typing import Optional

import torch
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures.bbox import get_box_tensor
from mmengine.structures import InstanceData
from torch import Tensor

from ..birads import attach_birads
from ..birads_head import _input_shape


@MODELS.register_module()
class BiradsClassifier(BaseDetector):
    """Backbone and neck features pooled in given boxes, classified into BI-RADS 3/4/5 (no detection).

    Args:
        backbone, neck: as in any MMDetection detector.
        birads_head: the :class:`RoIBiradsHead`; ``in_channels`` defaults to the neck's ``out_channels``.
    """

    def __init__(self, backbone: dict, neck: Optional[dict] = None, birads_head: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck) if neck else None
        head = dict(type='RoIBiradsHead', **(birads_head or {}))
        head.setdefault('in_channels', (neck or {}).get('out_channels'))
        self.birads_head = MODELS.build(head)

    def extract_feat(self, batch_inputs: Tensor):
        x = self.backbone(batch_inputs)
        return self.neck(x) if self.neck is not None else x

    def _forward(self, batch_inputs: Tensor, batch_data_samples=None):
        return self.extract_feat(batch_inputs)

    def loss(self, batch_inputs: Tensor, batch_data_samples) -> dict:
        return self.birads_head.loss(self.extract_feat(batch_inputs), batch_data_samples)

    def predict(self, batch_inputs: Tensor, batch_data_samples, rescale: bool = True):
        """Each sample's ``pred_instances``: its boxes (``proposals``, else the ground truth's, in the loaded
        image's pixels), their labels and scores as given (ground truth: score 1) and their BI-RADS."""
        feats = self.extract_feat(batch_inputs)
        given, boxes = [], []
        for sample in batch_data_samples:
            src = sample.proposals if 'proposals' in sample else sample.gt_instances
            inst = InstanceData(bboxes=get_box_tensor(src.bboxes).float().to(batch_inputs.device))
            n = len(inst.bboxes)
            inst.labels = src.labels.to(inst.bboxes.device) if 'labels' in src else \
                torch.zeros(n, dtype=torch.long, device=inst.bboxes.device)
            inst.scores = src.scores.float().to(inst.bboxes.device) if 'scores' in src else \
                torch.ones(n, device=inst.bboxes.device)
            sx, sy = sample.metainfo.get('scale_factor', (1.0, 1.0))
            boxes.append(inst.bboxes * inst.bboxes.new_tensor([sx, sy, sx, sy]))  # the network input's pixels
            given.append(inst)
        logits = self.birads_head.predict(feats, boxes, _input_shape(batch_data_samples) or
                                          tuple(batch_inputs.shape[-2:]))
        for sample, inst, lg in zip(batch_data_samples, given, logits):
            sample.pred_instances = attach_birads(inst, lg)
        return batch_data_samples
