from .birads import BiradsDetector

__all__ = ['BiradsDetector']
