"""The release formats by name: each one's adapter module, how its folder is recognised, and ``convert``.

An adapter module has ``DATASET`` (the name written into the COCO files), ``DESCRIPTION``,
``read_release(root, log) -> {source id: ImageRecord}`` and, where boxes are found only once the image is read,
``locate(pending box, image)`` (see :mod:`data_converters.core`). Importing this module loads no adapter (the
command line reads the names).
"""
from __future__ import annotations

import glob
import importlib
import os
from dataclasses import dataclass
from typing import Optional, Tuple

from .records import ConversionError


@dataclass(frozen=True)
class Format:
    name: str  # --format
    title: str
    adapter: str  # module of data_converters
    # A release folder is this format when, for every group, one of the group's glob patterns matches.
    markers: Tuple[Tuple[str, ...], ...]


FORMATS = {f.name: f for f in (
    Format('vindr', 'VinDr-Mammo', 'vindr_mammo', (('finding_annotations.csv',),)),
    Format('cbis-ddsm', 'CBIS-DDSM', 'cbis_ddsm', (('*case_description_*_set.csv', '*/*case_description_*_set.csv'),)),
    Format('inbreast', 'INbreast', 'inbreast', (('AllDICOMs', 'INbreast.csv', 'INbreast.xls'),)),
    Format('mias', 'mini-MIAS', 'mias', (('Info.txt', 'info.txt'), ('mdb*.pgm', '*/mdb*.pgm'))),
    Format('embed', 'EMBED', 'embed', (('*EMBED_OpenData_clinical*.csv', 'tables/*EMBED_OpenData_clinical*.csv'),)),
)}


def detect_format(root: str) -> str:
    """The format of the release at ``root``, from the files that only it has."""
    if not os.path.isdir(root):
        raise ConversionError(f'{root}: not a folder')
    found = [f.name for f in FORMATS.values()
             if all(any(glob.glob(os.path.join(root, p)) for p in group) for group in f.markers)]
    if len(found) != 1:
        what = 'none of the known layouts' if not found else f'several layouts ({", ".join(found)})'
        raise ConversionError(f'{root}: {what}; say which with --format {{{",".join(FORMATS)}}}')
    return found[0]


def adapter(fmt: str):
    """The adapter module of format ``fmt``."""
    if fmt not in FORMATS:
        raise ConversionError(f'unknown format {fmt!r}; one of {", ".join(FORMATS)}')
    return importlib.import_module(f'data_converters.{FORMATS[fmt].adapter}')


def convert(root: str, out: str, opts=None, fmt: Optional[str] = None) -> dict:
    """Converts the release at ``root`` (of format ``fmt``, detected when None) into COCO at ``out`` with
    :class:`~data_converters.core.ConvertOptions` ``opts``; returns the report (also ``OUT/report.json``)."""
    from .core import convert_release

    mod = adapter(fmt or detect_format(root))
    return convert_release(mod.read_release, root, out, opts, mod.DATASET, mod.DESCRIPTION,
                           getattr(mod, 'locate', None))
