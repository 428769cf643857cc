"""BI-RADS for any detector: ``BiradsDetector`` wraps an MMDetection model, unchanged, and classifies the BI-RADS of
each box it predicts from the neck's features pooled inside it (:class:`~mammo_det.models.RoIBiradsHead`).

Two config lines on top of a zoo config give any architecture (dense, multi-stage, query-based) the project's
output contract::

    _base_ = ['../_base_/datasets/vindr-mammo_detection.py', '../_base_/schedules/schedule_1x.py',
              '../_base_/default_runtime.py']
    model = dict(type='BiradsDetector', detector='mmdet::sparse_rcnn/sparse-rcnn_r50_fpn_1x_coco.py')

The class count of every head of the wrapped model (each stage of a cascade, each of Sparse R-CNN's six) is set from
the dataset's classes (``num_classes``, which the runner fills in from the dataset); ``detector_options`` that state
another count are refused. During training the branch learns on the ground-truth boxes that have a BI-RADS and on
jittered copies of them (boxes like the detector's own, a little off); at inference it pools inside each predicted
box. The detector's losses and predictions are the wrapped model's own: its neck output is caught by a forward hook
that lives only for the call, so the features are computed once, and the strides of the levels are read off the
maps, so the head needs nothing from the detector's heads.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional, Union

import torch
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures.bbox import scale_boxes
from torch import Tensor

from ...zoo import set_class_counts, wrapped_model_config
from ..birads import attach_birads
from ..birads_head import _input_shape


@MODELS.register_module()
class BiradsDetector(BaseDetector):
    """Any MMDetection detector (``detector``: a model config, or a config file whose ``model`` is taken) with a
    BI-RADS head on its neck's features. Predictions carry ``birads_scores`` and ``birads`` per box.

    Args:
        detector: the wrapped model, e.g. ``'mmdet::atss/atss_r50_fpn_1x_coco.py'``.
        detector_options: merged into the wrapped model's config (test_cfg, a smaller backbone ...).
        num_classes: the dataset's number of classes, set on every head of the wrapped model (None: the wrapped
            config's own counts; the runner fills it in from the dataset).
        birads_head: the :class:`RoIBiradsHead`; its ``in_channels`` defaults to the neck's output channels.
        data_preprocessor: merged over the wrapped model's (whose mean, std and padding it keeps); its type is
            ``MammoDataPreprocessor`` (one-channel samples) unless given.
        with_birads: False: no BI-RADS head; losses and predictions are the wrapped detector's alone.
    """

    def __init__(self, detector: Union[str, dict], detector_options: Optional[dict] = None,
                 num_classes: Optional[int] = None, birads_head: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None, with_birads: bool = True, init_cfg: Optional[dict] = None):
        model = wrapped_model_config(detector, detector_options)
        if num_classes is not None:  # a model given as a dict, and the options, are what a user wrote
            set_class_counts(model, num_classes, dict(detector=detector if isinstance(detector, dict) else {},
                                                      detector_options=detector_options or {}))
        preprocessor = dict(model.pop('data_preprocessor', None) or {}, **(data_preprocessor or {}))
        # This project's samples are one channel at their stored bit depth: the zoo model's mean, std and padding
        # are kept, its preprocessor type is ours unless one is given.
        preprocessor['type'] = (data_preprocessor or {}).get('type', 'MammoDataPreprocessor')
        # This project's pipelines pad nothing; a zoo model whose own pipeline pads (RTMDet: Pad to 640) would get
        # feature maps that do not line up in its neck. Pad the batch to the coarsest stride, as most zoo configs do.
        preprocessor.setdefault('pad_size_divisor', 32)
        super().__init__(data_preprocessor=preprocessor or None, init_cfg=init_cfg)
        self.detector = MODELS.build(model)
        self.birads_head = None  # with_birads=False: the wrapped detector alone
        if with_birads:
            head = dict(type='RoIBiradsHead', **(birads_head or {}))
            head.setdefault('in_channels', self._neck_channels(model))
            # Built on a fork of the random state: the wrapped detector then starts and trains from the random
            # stream it has without the branch (with the features detached, it learns exactly the same).
            with torch.random.fork_rng(devices=[]):
                self.birads_head = MODELS.build(head)

    @staticmethod
    def _neck_channels(model: dict) -> Optional[int]:
        neck = model.get('neck')
        neck = neck[-1] if isinstance(neck, (list, tuple)) else neck
        return neck.get('out_channels') if neck else None

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
        logits = self.birads_head.predict(feats[-1], boxes, _input_shape(samples) or tuple(batch_inputs.shape[-2:]))
        for sample, lg in zip(samples, logits):
            attach_birads(sample.pred_instances, lg)
        return samples
