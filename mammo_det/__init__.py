"""mammo-det: detection of non-benign findings in mammograms (VinDr-Mammo) on MMDetection.

Importing the package checks the installed OpenMMLab versions and registers every module (datasets,
transforms, heads, metric, hooks) into mmdet's registries, as ``custom_imports=dict(imports=['mammo_det'])``
in the configs expects.

Converter worker processes set ``MAMMO_DET_NO_REGISTER=1``: they only need the numpy/pydicom layer
(``mammo_det.io``), and importing torch and mmdet would cost each of them seconds and hundreds of MB.
"""
import os as _os
from importlib.metadata import PackageNotFoundError, version as _version

__version__ = '0.1.0'

_REQUIRED = {  # package: (minimum inclusive, maximum exclusive), as mmdet 3.3 itself asserts
    'mmcv': ('2.0.0rc4', '2.2.0'),
    'mmengine': ('0.10.0', '1.0.0'),
    'mmdet': ('3.3.0', '3.4.0'),
}
_INSTALL_HINT = ('install with `make install` (builds mmcv 2.1.0 with its ops), or see README "Installing on '
                 'a GPU cluster"')


def _check_versions() -> None:
    from packaging.version import Version

    for pkg, (lo, hi) in _REQUIRED.items():
        try:
            v = _version(pkg)
        except PackageNotFoundError:
            raise ImportError(f'mammo-det needs {pkg}>={lo},<{hi}, which is not installed; {_INSTALL_HINT}') from None
        if not Version(lo) <= Version(v) < Version(hi):
            raise ImportError(f'mammo-det needs {pkg}>={lo},<{hi}, found {pkg} {v}; {_INSTALL_HINT}')
    try:
        _version('mmcv-lite')
    except PackageNotFoundError:
        pass
    else:
        raise ImportError(f'mmcv-lite is installed: it has no compiled ops (NMS, RoIAlign); {_INSTALL_HINT}')


if _os.environ.get('MAMMO_DET_NO_REGISTER') != '1':
    _check_versions()
    from . import datasets, engine, models  # noqa: F401  (registers into mmdet's registries)
    from .evaluation import mmdet_metric  # noqa: F401
