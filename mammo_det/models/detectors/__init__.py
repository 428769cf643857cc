from .birads import BiradsDetector, RoIBiradsHead

__all__ = ['BiradsDetector', 'RoIBiradsHead']
