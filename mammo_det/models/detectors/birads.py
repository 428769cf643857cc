"""BI-RADS for any detector: ``BiradsDetector`` wraps an MMDetection model, unchanged, and classifies the BI-RADS of
each box from the neck's features pooled inside it (``RoIBiradsHead``).

A few config lines on top of a zoo config give any architecture the project's output contract::

    _base_ = ['../_base_/datasets/vindr-mammo_detection.py', '../_base_/schedules/schedule_1x.py',
              '../_base_/default_runtime.py']
    model = dict(type='BiradsDetector', detector='mmdet::atss/atss_r50_fpn_1x_coco.py',  # the zoo model, unchanged
                 detector_options=dict(bbox_head=dict(num_classes=10)),                # our finding types
                 data_preprocessor=dict(type='MammoDataPreprocessor'))                 # one-channel inputs

During training the branch learns on the ground-truth boxes that have a BI-RADS and on jittered copies of them
(boxes like the detector's own, a little off); at inference it pools inside each predicted box. The detector's
losses and predictions are the wrapped model's own: its neck output is caught by a forward hook that lives only for
the call, so the features are computed once.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Union

import torch
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi, get_box_tensor, scale_boxes
from mmengine.model import BaseModule
from torch import Tensor, nn

from ...zoo import wrapped_model_config
from ..birads import DEFAULT_LOSS, NUM_BIRADS, attach_birads, birads_loss, fc_tower, gt_birads, roi_extractor


@MODELS.register_module()
class RoIBiradsHead(BaseModule):
    """BI-RADS logits of boxes from RoIAlign on a feature pyramid, then two fully connected layers.

    Args:
        in_channels: channels of the pyramid levels (None: filled in by :class:`BiradsDetector` from the neck).
        featmap_strides: stride of each level used (None: filled in from the detector's head).
        roi_size: RoIAlign output size.
        fc_channels: width of the two fcs.
        jitter: training boxes per ground-truth box besides itself, each shifted and scaled by up to ``jitter_scale``
            of its size.
        loss_birads: loss config.
        detach_features: the BI-RADS loss trains this head alone, not the neck and backbone it pools from (the
            wrapped detector then learns exactly as without it); False lets it shape them too.
    """

    def __init__(self, in_channels: Optional[int] = None, featmap_strides: Optional[Sequence[int]] = None,
                 roi_size: int = 7, fc_channels: int = 256, jitter: int = 4, jitter_scale: float = 0.15,
                 loss_birads: dict = DEFAULT_LOSS, detach_features: bool = True, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if in_channels is None or featmap_strides is None:
            raise ValueError('RoIBiradsHead needs in_channels and featmap_strides (BiradsDetector fills them in)')
        self.roi_extractor = roi_extractor(in_channels, featmap_strides, roi_size)
        self.fcs = fc_tower(in_channels * roi_size * roi_size, fc_channels, 2)
        self.fc_birads = nn.Linear(fc_channels, NUM_BIRADS)
        self.jitter, self.jitter_scale = jitter, jitter_scale
        self.detach_features = detach_features
        self.loss_birads = MODELS.build(loss_birads)

    def forward(self, feats: Sequence[Tensor], boxes: List[Tensor]) -> Tensor:
        """BI-RADS logits (total boxes, 3) of each image's boxes (xyxy, network input pixels)."""
        # Whatever a wrapped detector keeps gets a BI-RADS: a degenerate box (x2 < x1 from a barely trained
        # regression, NaN) is pooled as the point or line it collapses to, which RoIAlign accepts.
        boxes = [torch.nan_to_num(b) for b in boxes]
        boxes = [torch.cat([b[:, :2], torch.maximum(b[:, 2:], b[:, :2])], dim=1) for b in boxes]
        rois = bbox2roi(boxes)
        if rois.shape[0] == 0:
            return rois.new_zeros((0, NUM_BIRADS))
        feats = tuple(f.detach() if self.detach_features else f for f in feats[:self.roi_extractor.num_inputs])
        pooled = self.roi_extractor(feats, rois)
        return self.fc_birads(self.fcs(pooled))

    def jittered(self, boxes: Tensor) -> Tensor:
        """``boxes`` and ``jitter`` copies of each, centre and size moved by up to ``jitter_scale`` of the size."""
        wh = (boxes[:, 2:] - boxes[:, :2]).repeat(self.jitter, 1)
        centre = ((boxes[:, :2] + boxes[:, 2:]) / 2).repeat(self.jitter, 1)
        noise = (torch.rand(len(wh), 4, device=boxes.device) * 2 - 1) * self.jitter_scale
        centre = centre + noise[:, :2] * wh
        wh = wh * (1 + noise[:, 2:])
        return torch.cat([boxes, torch.cat([centre - wh / 2, centre + wh / 2], dim=1)])

    def loss(self, feats: Sequence[Tensor], batch_data_samples) -> dict:
        boxes, targets = [], []
        for sample in batch_data_samples:
            gt = sample.gt_instances
            known = gt_birads(gt) >= 0
            boxes.append(self.jittered(get_box_tensor(gt.bboxes)[known]))
            targets.append(gt_birads(gt)[known].repeat(self.jitter + 1))
        logits = self.forward(feats, boxes)
        return dict(loss_birads=birads_loss(self.loss_birads, logits, torch.cat(targets)))

    def predict(self, feats: Sequence[Tensor], boxes: List[Tensor]) -> List[Tensor]:
        """Per image, the logits of its boxes."""
        return list(self.forward(feats, boxes).split([len(b) for b in boxes]))


@MODELS.register_module()
class BiradsDetector(BaseDetector):
    """Any MMDetection detector (``detector``: a model config, or a config file whose ``model`` is taken) with a
    BI-RADS head on its neck's features. Predictions carry ``birads_scores`` and ``birads`` per box.

    Args:
        detector: the wrapped model, e.g. ``'mmdet::atss/atss_r50_fpn_1x_coco.py'``.
        detector_options: merged into the wrapped model's config (``bbox_head.num_classes`` ...).
        birads_head: the BI-RADS head; its ``in_channels`` and ``featmap_strides`` default to the neck's output
            channels and the strides of the detector's head.
        data_preprocessor: merged over the wrapped model's (whose mean, std and padding it keeps).
        with_birads: False: no BI-RADS head; losses and predictions are the wrapped detector's alone.
    """

    def __init__(self, detector: Union[str, dict], detector_options: Optional[dict] = None,
                 birads_head: Optional[dict] = None, data_preprocessor: Optional[dict] = None,
                 with_birads: bool = True, init_cfg: Optional[dict] = None):
        model = wrapped_model_config(detector, detector_options)
        preprocessor = dict(model.pop('data_preprocessor', None) or {}, **(data_preprocessor or {}))
        # This project's pipelines pad nothing; a zoo model whose own pipeline pads (RTMDet: Pad to 640) would get
        # feature maps that do not line up in its neck. Pad the batch to the coarsest stride, as most zoo configs do.
        preprocessor.setdefault('pad_size_divisor', 32)
        super().__init__(data_preprocessor=preprocessor or None, init_cfg=init_cfg)
        self.detector = MODELS.build(model)
        self.birads_head = None  # with_birads=False: the wrapped detector alone
        if with_birads:
            head = dict(type='RoIBiradsHead', **(birads_head or {}))
            head.setdefault('in_channels', self._neck_channels(model))
            head.setdefault('featmap_strides', self._strides())
            self.birads_head = MODELS.build(head)

    @staticmethod
    def _neck_channels(model: dict) -> Optional[int]:
        neck = model.get('neck')
        neck = neck[-1] if isinstance(neck, (list, tuple)) else neck
        return neck.get('out_channels') if neck else None

    def _strides(self) -> Optional[List[int]]:
        head = getattr(self.detector, 'bbox_head', None) or getattr(self.detector, 'rpn_head', None)
        generator = getattr(head, 'prior_generator', None)
        if generator is None:
            return None
        return [int(s[0]) if isinstance(s, (tuple, list)) else int(s) for s in generator.strides]

    @contextmanager
    def neck_features(self) -> Iterator[list]:
        """Within the block, each forward of the detector's neck (backbone where there is none) appends its
        output to the yielded list; the hook is removed on exit."""
        caught: list = []
        module = getattr(self.detector, 'neck', None) or self.detector.backbone
        handle = module.register_forward_hook(lambda m, inputs, output: caught.append(output))
        try:
            yield caught
        finally:
            handle.remove()

    def extract_feat(self, batch_inputs: Tensor):
        return self.detector.extract_feat(batch_inputs)

    def _forward(self, batch_inputs: Tensor, batch_data_samples=None):
        return self.detector._forward(batch_inputs, batch_data_samples)

    def loss(self, batch_inputs: Tensor, batch_data_samples) -> dict:
        if self.birads_head is None:
            return self.detector.loss(batch_inputs, batch_data_samples)
        with self.neck_features() as feats:
            losses = self.detector.loss(batch_inputs, batch_data_samples)
        losses.update(self.birads_head.loss(feats[-1], batch_data_samples))
        return losses

    def predict(self, batch_inputs: Tensor, batch_data_samples, rescale: bool = True):
        if self.birads_head is None:
            return self.detector.predict(batch_inputs, batch_data_samples, rescale=rescale)
        with self.neck_features() as feats:
            samples = self.detector.predict(batch_inputs, batch_data_samples, rescale=rescale)
        boxes = []
        for sample in samples:
            b = sample.pred_instances.bboxes
            if rescale and len(b) and 'scale_factor' in sample.metainfo:
                b = scale_boxes(b, sample.metainfo['scale_factor'])  # back to the network input's pixels
            boxes.append(b)
        for sample, logits in zip(samples, self.birads_head.predict(feats[-1], boxes)):
            attach_birads(sample.pred_instances, logits)
        return samples
