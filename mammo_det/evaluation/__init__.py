"""Evaluation: pure numpy + COCO backends; the MMDetection metric lives in ``mammo_det.evaluation.mmdet_metric``."""
from .metrics import (FPPI_POINTS, EvaluationInputError, compare, evaluate, format_table, load_json,
                      recall_at_fppi, validate_detections, validate_gt)

__all__ = ['FPPI_POINTS', 'EvaluationInputError', 'compare', 'evaluate', 'format_table', 'load_json',
           'recall_at_fppi', 'validate_detections', 'validate_gt']
