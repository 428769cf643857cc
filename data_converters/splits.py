"""Study-level stratified splitting (iterative stratification, Sechidis et al. 2011), as VinDr-Mammo's own split."""
from __future__ import annotations

from typing import Dict, Iterable, Set

import numpy as np


def iterative_stratification(labels: Dict[str, Iterable[str]], fraction: float, seed: int = 0) -> Set[str]:
    """Picks about ``fraction`` of the keys so that every label is spread in that proportion.

    Sechidis' algorithm for two subsets: repeatedly take the label with the fewest unassigned examples and
    give each of its examples to the subset that still wants that label most (ties: the subset that wants
    more examples overall, then a seeded coin). Unlabelled examples fill the subsets' remaining quotas.

    Args:
        labels: key (a study id) -> its labels (presence counts, repeats ignored).
        fraction: share of keys for the returned subset, in [0, 1].
        seed: makes the result reproducible.

    Returns:
        The keys of the ``fraction`` subset.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f'fraction must be in [0, 1], got {fraction}')
    rng = np.random.default_rng(seed)
    keys = sorted(labels)
    sets = {k: set(labels[k]) for k in keys}
    ratios = np.array([1.0 - fraction, fraction])
    want = ratios * len(keys)
    all_labels = sorted(set().union(*sets.values())) if sets else []
    want_label = {lab: ratios * sum(lab in s for s in sets.values()) for lab in all_labels}
    chosen: Set[str] = set()
    remaining = set(keys)

    def assign(key: str, j: int) -> None:
        remaining.discard(key)
        want[j] -= 1
        for lab in sets[key]:
            want_label[lab][j] -= 1
        if j == 1:
            chosen.add(key)

    def best(scores: np.ndarray) -> int:
        top = np.flatnonzero(scores == scores.max())
        if len(top) > 1:
            top2 = top[want[top] == want[top].max()]
            return int(rng.choice(top2))
        return int(top[0])

    while remaining:
        counts = {}
        for k in remaining:
            for lab in sets[k]:
                counts[lab] = counts.get(lab, 0) + 1
        if not counts:
            break
        fewest = min(counts.values())
        lab = str(rng.choice(sorted(lab for lab, c in counts.items() if c == fewest)))
        members = sorted(k for k in remaining if lab in sets[k])
        for k in rng.permutation(members):
            assign(str(k), best(want_label[lab].copy()))
    for k in rng.permutation(sorted(remaining)):
        assign(str(k), best(want.copy()))
    return chosen
