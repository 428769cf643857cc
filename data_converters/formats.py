"""``mammo-det convert --format``: the dataset adapters by name, and which one a release folder is."""
from __future__ import annotations

import glob
import os
from typing import Optional

from .core import ConversionError, ConvertOptions

FORMATS = ('vindr', 'cbis-ddsm', 'inbreast', 'mias', 'embed')


def detect_format(root: str) -> str:
    """The format of the release at ``root``, from the files that only it has."""
    def has(*patterns):
        return any(glob.glob(os.path.join(root, p)) for p in patterns)

    if not os.path.isdir(root):
        raise ConversionError(f'{root}: not a folder')
    found = []
    if has('finding_annotations.csv'):
        found.append('vindr')
    if has('*case_description_*_set.csv', '*/*case_description_*_set.csv'):
        found.append('cbis-ddsm')
    if has('AllDICOMs', 'INbreast.csv', 'INbreast.xls'):
        found.append('inbreast')
    if has('Info.txt', 'info.txt') and has('mdb*.pgm', '*/mdb*.pgm'):
        found.append('mias')
    if has('*EMBED_OpenData_clinical*.csv', 'tables/*EMBED_OpenData_clinical*.csv'):
        found.append('embed')
    if len(found) != 1:
        what = 'none of the known layouts' if not found else f'several layouts ({", ".join(found)})'
        raise ConversionError(f'{root}: {what}; say which with --format {{{",".join(FORMATS)}}}')
    return found[0]


def convert(root: str, out: str, opts: Optional[ConvertOptions] = None, fmt: Optional[str] = None) -> dict:
    """Converts the release at ``root`` (of format ``fmt``, detected when None) into COCO at ``out``."""
    fmt = fmt or detect_format(root)
    if fmt == 'vindr':
        from .vindr_mammo import convert as run
    elif fmt == 'cbis-ddsm':
        from .cbis_ddsm import convert as run
    elif fmt == 'inbreast':
        from .inbreast import convert as run
    elif fmt == 'mias':
        from .mias import convert as run
    elif fmt == 'embed':
        from .embed import convert as run
    else:
        raise ConversionError(f'unknown format {fmt!r}; one of {", ".join(FORMATS)}')
    return run(root, out, opts or ConvertOptions())
