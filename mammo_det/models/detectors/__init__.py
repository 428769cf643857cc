from .birads import BiradsDetector, RoIBiradsHead
from .birads_detr import BiradsDeformableDETR, BiradsDINO

__all__ = ['BiradsDINO', 'BiradsDeformableDETR', 'BiradsDetector', 'RoIBiradsHead']
