"""MMDetection's DINO and Deformable DETR, also handing the neck's feature maps to their head: the BI-RADS branch of
:class:`~mammo_det.models.dense_heads.BiradsDINOHead` pools them inside each query's box. Everything else is
mmdet's detector."""
from __future__ import annotations

from mmdet.models.detectors import DINO, DeformableDETR
from mmdet.registry import MODELS


class _FeaturesToHead:
    """Adds ``birads_feats`` (the neck's output) to the head's inputs when the head has a BI-RADS branch."""

    def forward_transformer(self, img_feats, batch_data_samples=None) -> dict:
        head_inputs = super().forward_transformer(img_feats, batch_data_samples)
        if getattr(self.bbox_head, 'with_birads', False):
            head_inputs['birads_feats'] = img_feats
        return head_inputs


@MODELS.register_module()
class BiradsDINO(_FeaturesToHead, DINO):
    """DINO for a :class:`BiradsDINOHead`."""


@MODELS.register_module()
class BiradsDeformableDETR(_FeaturesToHead, DeformableDETR):
    """Deformable DETR for a :class:`BiradsDeformableDETRHead`."""
