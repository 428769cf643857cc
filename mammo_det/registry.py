"""Registers every mammo-det part into MMDetection's registries; the module the configs' ``custom_imports`` name.

Importing it checks the installed OpenMMLab versions first, so a wrong install fails with what to do instead of
an error deep inside mmdet. Nothing else in the package registers on import: ``import mammo_det`` stays cheap.
"""
from importlib.metadata import PackageNotFoundError, version as _version

REQUIRED = {  # package: (minimum inclusive, maximum exclusive), as mmdet 3.3 itself asserts
    'mmcv': ('2.0.0rc4', '2.2.0'),
    'mmengine': ('0.10.0', '1.0.0'),
    'mmdet': ('3.3.0', '3.4.0'),
}
INSTALL_HINT = ('install with `make install` (builds mmcv 2.1.0 with its ops), or see docs/install.md "On a GPU '
                'cluster"')


def check_versions() -> None:
    """Raises ImportError naming the package and what to install when mmcv/mmengine/mmdet do not fit."""
    from packaging.version import Version

    for pkg, (lo, hi) in REQUIRED.items():
        try:
            v = _version(pkg)
        except PackageNotFoundError:
            raise ImportError(f'mammo-det needs {pkg}>={lo},<{hi}, which is not installed; {INSTALL_HINT}') from None
        if not Version(lo) <= Version(v) < Version(hi):
            raise ImportError(f'mammo-det needs {pkg}>={lo},<{hi}, found {pkg} {v}; {INSTALL_HINT}')
    try:
        _version('mmcv-lite')
    except PackageNotFoundError:
        pass
    else:
        raise ImportError(f'mmcv-lite is installed: it has no compiled ops (NMS, RoIAlign); {INSTALL_HINT}')


check_versions()

from . import datasets, engine, models  # noqa: E402,F401  (each module registers what it defines)
from .evaluation import mmdet_metric  # noqa: E402,F401
