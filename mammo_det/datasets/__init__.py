from .samplers import PositiveNegativeSampler
from .transforms import LoadBiradsAnnotations, LoadMammogram, PackMammoInputs
from .vindr_mammo import VinDrMammoDataset

__all__ = ['VinDrMammoDataset', 'PositiveNegativeSampler', 'LoadMammogram', 'LoadBiradsAnnotations',
           'PackMammoInputs']
