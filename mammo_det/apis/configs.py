"""Finding a shipped config by path or by name, from a source checkout or from an installed wheel.

The configs live in ``configs/`` at the repository root; the package reaches them as ``mammo_det/configs`` (a link
in the source tree, real files in a wheel), so ``find_config('demo')`` works after ``pip install mammo-det`` too.
"""
from __future__ import annotations

import os
from typing import List


def package_configs_dir() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs')


def list_configs() -> List[str]:
    """Every shipped config, relative to the configs folder (``_base_`` files left out)."""
    root = package_configs_dir()
    out = []
    for dirpath, dirnames, names in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(('_', '.')))
        out += [os.path.relpath(os.path.join(dirpath, n), root) for n in sorted(names) if n.endswith('.py')]
    return out


def find_config(name: str) -> str:
    """A config path from an existing path, a path relative to ``configs/`` (``demo/faster-...py``), a file
    name or stem (``faster-rcnn_r50_fpn_birads_1x_vindr-mammo``), or a folder with one config (``demo``).

    Raises:
        FileNotFoundError: nothing matches; the message lists the shipped configs.
    """
    if os.path.isfile(name):
        return name
    root = package_configs_dir()
    shipped = list_configs()
    stem = name[:-3] if name.endswith('.py') else name
    hits = [c for c in shipped if c[:-3] == stem or os.path.basename(c)[:-3] == stem]
    if not hits:
        hits = [c for c in shipped if c.split(os.sep)[0] == stem.strip('/')]
    if len(hits) == 1:
        return os.path.join(root, hits[0])
    raise FileNotFoundError(f'no {"single " if hits else ""}config named {name!r}; shipped: {", ".join(shipped)}')
