from .data_preprocessor import MammoDataPreprocessor
from .dense_heads import BiradsDeformableDETRHead, BiradsDINOHead, BiradsFCOSHead, BiradsRetinaHead
from .detectors import BiradsDeformableDETR, BiradsDetector, BiradsDINO, RoIBiradsHead
from .iou import Fp32BboxOverlaps2D
from .roi_heads import BiradsBBoxHead, BiradsRoIHead, CascadeBiradsRoIHead

__all__ = ['BiradsBBoxHead', 'BiradsDINO', 'BiradsDINOHead', 'BiradsDeformableDETR', 'BiradsDeformableDETRHead',
           'BiradsDetector', 'BiradsFCOSHead', 'BiradsRetinaHead', 'BiradsRoIHead', 'CascadeBiradsRoIHead',
           'Fp32BboxOverlaps2D', 'MammoDataPreprocessor', 'RoIBiradsHead']
