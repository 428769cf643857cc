"""mammo-det: detection of non-benign findings in mammograms (VinDr-Mammo) on MMDetection.

Importing the package is cheap: it loads neither torch nor mmdet, so ``mammo-det synth|convert|evaluate`` and the
converter's worker processes start in a fraction of a second. The configs register the MMDetection parts through
``custom_imports=dict(imports=['mammo_det.registry'])`` (see :mod:`mammo_det.registry`).
"""
__version__ = '0.1.0'
