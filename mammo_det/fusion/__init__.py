"""Two-view reading of any detector's output: link each breast's CC and MLO detections by their depth from the
nipple, and rescore them (numpy only; reads a COCO image list with landmarks and a predictions file)."""
from .fuse import FusionError, fit_fuser, fuse_predictions, load_fuser

__all__ = ['FusionError', 'fit_fuser', 'fuse_predictions', 'load_fuser']
