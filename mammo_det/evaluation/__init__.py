"""Evaluation: pure numpy + COCO backends (no torch, no mmdet). Modules: ``keys`` (names and thresholds),
``inputs`` (reading and checking), ``protocol``, ``coco`` (AP and matching), ``froc``, ``birads``, ``breast``,
``bootstrap``, ``evaluate`` (all of them under one protocol, and ``compare``), ``report`` (tables and files),
``plots``; the MMDetection metric lives in ``mammo_det.evaluation.mmdet_metric``."""
from .evaluate import compare, evaluate, point_metrics
from .inputs import EvaluationInputError, load_json, validate_detections, validate_gt
from .keys import FPPI_POINTS, HEADLINE_FPPI, ap_key, fppi_key
from .protocol import check_protocol, subgroups
from .report import format_table

__all__ = ['FPPI_POINTS', 'HEADLINE_FPPI', 'EvaluationInputError', 'ap_key', 'check_protocol', 'compare',
           'evaluate', 'format_table', 'fppi_key', 'load_json', 'point_metrics', 'subgroups',
           'validate_detections', 'validate_gt']
