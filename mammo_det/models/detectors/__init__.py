from .birads import BiradsDetector
from .birads_classifier import BiradsClassifier

__all__ = ['BiradsClassifier', 'BiradsDetector']
