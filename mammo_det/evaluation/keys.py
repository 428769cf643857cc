"""The names of every reported number and the thresholds behind them, in one place (no other imports).

``metrics.json`` keys: ``mAP``/``mAP50``/``mAP75`` (and ``mAP10`` ... for extra IoU thresholds), per category
``AP``/``AP50``/``AP75``/``AP10`` ..., ``recall_at_fppi[fppi_key(f)]`` for f in ``FPPI_POINTS``. Definitions:
``docs/metrics.md``.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

# pycocotools' IoU and recall thresholds, computed its way so that equal values compare equal.
COCO_IOU_THRS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
RECALL_THRS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
IOU50, IOU75 = 0, 5  # rows of IoU 0.5 and 0.75 in COCO_IOU_THRS (and in every precision array over them)
MAX_DETS = 100  # detections per image and category that COCO AP counts
AREA_ALL = [0.0, 1e5 ** 2]  # pycocotools' "all" area range

FPPI_POINTS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)
HEADLINE_FPPI = 0.5  # the FROC point that tables, plots and the leaderboard single out

HITS = ('iou', 'center')  # what makes a FROC hit
IMAGE_SETS = ('all', 'positive')  # which images are evaluated
# subgroup key -> the image field (as the converter writes it)
SUBGROUP_FIELDS = dict(density='breast_density', view='view_position', laterality='laterality',
                       vendor='manufacturer')


def fppi_key(f: float) -> str:
    """The key of FPPI point ``f`` in ``recall_at_fppi`` ('0.125', '0.5', '1', ...)."""
    return f'{f:g}'


def recall_column(f: float = HEADLINE_FPPI) -> str:
    """The table column of recall at FPPI point ``f``: 'R@0.5FPPI'."""
    return f'R@{fppi_key(f)}FPPI'


def ap_key(iou: float) -> str:
    """The key of AP at one IoU threshold: 0.1 -> 'AP10', 0.25 -> 'AP25'."""
    return f'AP{iou * 100:g}'


def ap_keys(iou_thrs: Sequence[float] = ()) -> List[str]:
    """The per-category AP keys of an evaluation with extra IoU thresholds ``iou_thrs``."""
    return ['AP', 'AP50', 'AP75'] + [ap_key(t) for t in iou_thrs]


def metrics_ap_keys(metrics: dict) -> List[str]:
    """:func:`ap_keys` of a computed ``metrics`` dict (from its recorded protocol)."""
    return ap_keys((metrics.get('protocol') or {}).get('iou_thrs', []))
