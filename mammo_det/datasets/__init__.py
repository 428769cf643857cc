from .samplers import PositiveNegativeSampler
from .transforms import LoadBiradsAnnotations, LoadMammogram, PackMammoInputs
from .mammo import MammoDataset, VinDrMammoDataset

__all__ = ['MammoDataset', 'VinDrMammoDataset', 'PositiveNegativeSampler', 'LoadMammogram', 'LoadBiradsAnnotations',
           'PackMammoInputs']
