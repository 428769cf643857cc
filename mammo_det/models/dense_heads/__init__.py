from .birads import BiradsFCOSHead, BiradsRetinaHead, DenseBiradsMixin
from .birads_detr import BiradsDeformableDETRHead, BiradsDINOHead, DetrBiradsMixin

__all__ = ['BiradsDINOHead', 'BiradsDeformableDETRHead', 'BiradsFCOSHead', 'BiradsRetinaHead', 'DenseBiradsMixin',
           'DetrBiradsMixin']
