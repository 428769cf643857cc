"""The domain in one place: finding categories, BI-RADS, densities, views, lateralities (no heavy imports).

The finding categories keep the stable order that gives COCO category ids 1..10; the converters, the dataset, the
models and the evaluation all take their vocabulary from here.
"""
from __future__ import annotations

from typing import Iterable, List, Optional

FINDING_CATEGORIES = (
    'Mass',
    'Suspicious Calcification',
    'Focal Asymmetry',
    'Architectural Distortion',
    'Asymmetry',
    'Suspicious Lymph Node',
    'Skin Thickening',
    'Nipple Retraction',
    'Global Asymmetry',
    'Skin Retraction',
)
NO_FINDING = 'No Finding'

# Finding BI-RADS that a box can carry (VinDr-Mammo: 3, 4, 5) and the BI-RADS head's classes, in this order.
BIRADS_VALUES = (3, 4, 5)
BREAST_BIRADS_VALUES = (0, 1, 2, 3, 4, 5, 6)
DENSITIES = ('A', 'B', 'C', 'D')
VIEWS = ('CC', 'MLO')
LATERALITIES = ('L', 'R')

# Short names for --classes (lower case, underscores), e.g. ``--classes mass,calcification``.
ALIASES = {
    'mass': 'Mass',
    'calcification': 'Suspicious Calcification',
    'focal_asymmetry': 'Focal Asymmetry',
    'architectural_distortion': 'Architectural Distortion',
    'distortion': 'Architectural Distortion',
    'asymmetry': 'Asymmetry',
    'lymph_node': 'Suspicious Lymph Node',
    'skin_thickening': 'Skin Thickening',
    'nipple_retraction': 'Nipple Retraction',
    'global_asymmetry': 'Global Asymmetry',
    'skin_retraction': 'Skin Retraction',
}


def density_letter(acr) -> Optional[str]:
    """An ACR density category given as a number (1-4, as CBIS-DDSM, INbreast and EMBED write it) -> its letter
    A-D; None for an empty value. ValueError names a value outside 1-4."""
    if acr is None or str(acr).strip() == '':
        return None
    n = int(acr)
    if not 1 <= n <= len(DENSITIES):
        raise ValueError(f'breast density {acr!r} is not an ACR category 1-4')
    return DENSITIES[n - 1]


def birads_class(birads: int) -> int:
    """BI-RADS 3/4/5 -> the BI-RADS head's class index 0/1/2 (ValueError otherwise)."""
    return BIRADS_VALUES.index(int(birads))


def birads_value(index: int) -> int:
    """The BI-RADS head's class index 0/1/2 -> BI-RADS 3/4/5."""
    return BIRADS_VALUES[int(index)]


def resolve_classes(names: Optional[Iterable[str]]) -> List[str]:
    """Full category names, in the canonical order, for ``--classes`` text (short or full names).

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    if not names:
        return list(FINDING_CATEGORIES)
    by_key = {c.lower(): c for c in FINDING_CATEGORIES}
    by_key.update(ALIASES)
    chosen = set()
    for raw in names:
        key = raw.strip().lower()
        name = by_key.get(key) or by_key.get(key.replace(' ', '_'))
        if name is None:
            raise ValueError(f'unknown finding category {raw!r}; known: {", ".join(FINDING_CATEGORIES)} '
                             f'or short names {", ".join(ALIASES)}')
        chosen.add(name)
    return [c for c in FINDING_CATEGORIES if c in chosen]
