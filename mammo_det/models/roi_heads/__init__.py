from .birads import BiradsBBoxHead, BiradsRoIHead, CascadeBiradsRoIHead

__all__ = ['BiradsBBoxHead', 'BiradsRoIHead', 'CascadeBiradsRoIHead']
