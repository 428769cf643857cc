"""Synthetic releases in the real layouts of the datasets the converter reads, with each release's traps planted
and declared (``TRAPS`` of each writer module); nothing comes from the real data.

``write_release(root, fmt, ...)`` writes one and returns its truth (``synth_truth.json`` of ``mammo-det synth``):
per image key (the converter's ``source_id``) its split, side, view and boxes; the declared traps with the keys
they were planted on; and what the converter must leave out (``expected_skips``).
"""
from __future__ import annotations

from typing import Optional


def write_release(root: str, fmt: str, seed: int = 0, scale: Optional[float] = None, size: int = 12) -> dict:
    """Writes the synthetic release of ``fmt`` (a name of :data:`data_converters.formats.FORMATS` other than
    ``vindr``, whose writer is :func:`data_converters.synth.vindr.write_dataset`); returns its truth."""
    if fmt == 'cbis-ddsm':
        from .cbis_ddsm import write_cbis_ddsm
        return write_cbis_ddsm(root, patients=size, seed=seed, scale=scale or 0.1)
    if fmt == 'mias':
        from .mias import write_mias
        return write_mias(root, films=size, seed=seed)
    if fmt == 'inbreast':
        from .inbreast import write_inbreast
        return write_inbreast(root, patients=size, seed=seed, scale=scale or 0.08)
    if fmt == 'embed':
        from .embed import write_embed
        return write_embed(root, patients=size, seed=seed, scale=scale or 0.06)
    raise ValueError(f'no synthetic writer for format {fmt!r}; one of cbis-ddsm, inbreast, mias, embed')
