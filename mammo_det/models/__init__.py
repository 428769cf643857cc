from .data_preprocessor import MammoDataPreprocessor
from .iou import Fp32BboxOverlaps2D
from .roi_heads import BiradsBBoxHead, BiradsRoIHead, CascadeBiradsRoIHead

__all__ = ['BiradsBBoxHead', 'BiradsRoIHead', 'CascadeBiradsRoIHead', 'Fp32BboxOverlaps2D', 'MammoDataPreprocessor']
