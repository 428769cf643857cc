"""The one BI-RADS branch of every detector that is not an R-CNN: a box classifier on feature maps.

Each box is pooled by RoIAlign on the pyramid level its size picks (mmdet's ``SingleRoIExtractor``), then two fully
connected layers and a classifier give its BI-RADS (3/4/5) logits. It needs only feature maps and boxes, so it serves
any detector (:class:`~mammo_det.models.detectors.BiradsDetector` hands it the neck's output and the detector's
boxes) and boxes that come from elsewhere. The strides of the levels are read off the maps against the network
input's size unless given.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi, get_box_tensor
from mmengine.model import BaseModule
from torch import Tensor, nn

from .birads import DEFAULT_LOSS, NUM_BIRADS, birads_loss, fc_tower, gt_birads, roi_extractor


def map_strides(feats: Sequence[Tensor], input_shape: Sequence[int]) -> Tuple[int, ...]:
    """The stride of each feature map against the (padded) network input of ``input_shape`` (h, w): the power of 2
    nearest to the ratio of the heights (a stride-32 map of a 100-pixel input is 4 high: 25 -> 32)."""
    return tuple(2 ** round(math.log2(input_shape[0] / f.shape[-2])) for f in feats)


@MODELS.register_module()
class RoIBiradsHead(BaseModule):
    """BI-RADS logits of boxes from RoIAlign on a feature pyramid, then two fully connected layers.

    Args:
        in_channels: channels of the pyramid levels (:class:`BiradsDetector` fills it in from the neck).
        featmap_strides: stride of each level used; None reads them off the maps (every level is used).
        roi_size: RoIAlign output size.
        fc_channels: width of the two fcs.
        jitter: training boxes per ground-truth box besides itself, each shifted and scaled by up to ``jitter_scale``
            of its size.
        loss_birads: loss config.
        detach_features: the BI-RADS loss trains this head alone, not the neck and backbone it pools from (the
            detector then learns exactly as without it); False lets it shape them too.
    """

    def __init__(self, in_channels: Optional[int] = None, featmap_strides: Optional[Sequence[int]] = None,
                 roi_size: int = 7, fc_channels: int = 256, jitter: int = 4, jitter_scale: float = 0.15,
                 loss_birads: dict = DEFAULT_LOSS, detach_features: bool = True, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if in_channels is None:
            raise ValueError('RoIBiradsHead needs in_channels, the channels of the feature maps it pools (set '
                             'birads_head=dict(in_channels=...) where the detector has no neck with out_channels)')
        self.in_channels, self.roi_size = in_channels, roi_size
        self.featmap_strides = tuple(featmap_strides) if featmap_strides else None
        # RoIAlign per set of strides; it has no weights, so it is built on first use and not in the state dict
        self._extractors: Dict[Tuple[int, ...], nn.Module] = {}
        self.fcs = fc_tower(in_channels * roi_size * roi_size, fc_channels, 2)
        self.fc_birads = nn.Linear(fc_channels, NUM_BIRADS)
        self.jitter, self.jitter_scale = jitter, jitter_scale
        # The jitter draws from a generator of its own (seeded from the run's seed), so the BI-RADS branch leaves
        # the global random stream, and with it the detector's own sampling and noise, as it would be without it.
        self._generator = torch.Generator().manual_seed(torch.initial_seed() % 2 ** 63)
        self.detach_features = detach_features
        self.loss_birads = MODELS.build(loss_birads)

    def _extractor(self, feats: Sequence[Tensor], input_shape: Optional[Sequence[int]]) -> nn.Module:
        if self.featmap_strides is not None:
            strides = self.featmap_strides
        elif input_shape is None:
            raise ValueError('RoIBiradsHead without featmap_strides needs the network input shape to read the '
                             'strides off the feature maps')
        else:
            strides = map_strides(feats, input_shape)
        if strides not in self._extractors:
            self._extractors[strides] = roi_extractor(self.in_channels, strides, self.roi_size)
        return self._extractors[strides]

    def forward(self, feats: Sequence[Tensor], boxes: List[Tensor],
                input_shape: Optional[Sequence[int]] = None) -> Tensor:
        """BI-RADS logits (total boxes, 3) of each image's boxes (xyxy, in the pixels of the network input, whose
        padded (h, w) is ``input_shape``)."""
        # Whatever a detector keeps gets a BI-RADS: a degenerate box (x2 < x1 from a barely trained regression,
        # NaN) is pooled as the point or line it collapses to, which RoIAlign accepts.
        boxes = [torch.nan_to_num(b) for b in boxes]
        boxes = [torch.cat([b[:, :2], torch.maximum(b[:, 2:], b[:, :2])], dim=1) for b in boxes]
        rois = bbox2roi(boxes)
        if rois.shape[0] == 0:  # still in the graph of the head's weights: a loss of 0 backpropagates
            return rois.new_zeros((0, NUM_BIRADS)) + 0.0 * sum(p.sum() for p in self.parameters())
        extractor = self._extractor(feats, input_shape)
        feats = tuple(f.detach() if self.detach_features else f for f in feats[:extractor.num_inputs])
        return self.fc_birads(self.fcs(extractor(feats, rois)))

    def jittered(self, boxes: Tensor) -> Tensor:
        """``boxes`` and ``jitter`` copies of each, centre and size moved by up to ``jitter_scale`` of the size."""
        wh = (boxes[:, 2:] - boxes[:, :2]).repeat(self.jitter, 1)
        centre = ((boxes[:, :2] + boxes[:, 2:]) / 2).repeat(self.jitter, 1)
        noise = (torch.rand(len(wh), 4, generator=self._generator).to(boxes.device) * 2 - 1) * self.jitter_scale
        centre = centre + noise[:, :2] * wh
        wh = wh * (1 + noise[:, 2:])
        return torch.cat([boxes, torch.cat([centre - wh / 2, centre + wh / 2], dim=1)])

    def loss(self, feats: Sequence[Tensor], batch_data_samples) -> dict:
        """``loss_birads`` over the ground-truth boxes that have a BI-RADS and their jittered copies."""
        boxes, targets = [], []
        for sample in batch_data_samples:
            gt = sample.gt_instances
            classes = gt_birads(gt)
            known = classes >= 0
            boxes.append(self.jittered(get_box_tensor(gt.bboxes)[known]))
            targets.append(classes[known].repeat(self.jitter + 1))
        logits = self.forward(feats, boxes, _input_shape(batch_data_samples))
        return dict(loss_birads=birads_loss(self.loss_birads, logits, torch.cat(targets)))

    def predict(self, feats: Sequence[Tensor], boxes: List[Tensor],
                input_shape: Optional[Sequence[int]] = None) -> List[Tensor]:
        """Per image, the logits of its boxes."""
        return list(self.forward(feats, boxes, input_shape).split([len(b) for b in boxes]))


def _input_shape(batch_data_samples) -> Optional[Tuple[int, int]]:
    """The padded network input's (h, w), as mmdet's data preprocessor records it."""
    if not batch_data_samples:
        return None
    meta = batch_data_samples[0].metainfo
    shape = meta.get('batch_input_shape') or meta.get('pad_shape') or meta.get('img_shape')
    return tuple(shape[:2]) if shape else None
