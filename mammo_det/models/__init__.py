from .birads_head import RoIBiradsHead
from .data_preprocessor import MammoDataPreprocessor
from .detectors import BiradsClassifier, BiradsDetector
from .iou import Fp32BboxOverlaps2D
from .roi_heads import BiradsBBoxHead, BiradsRoIHead, CascadeBiradsRoIHead

__all__ = ['BiradsBBoxHead', 'BiradsClassifier', 'BiradsDetector', 'BiradsRoIHead', 'CascadeBiradsRoIHead',
           'Fp32BboxOverlaps2D', 'MammoDataPreprocessor', 'RoIBiradsHead']
