"""Which split each image goes to (the official one, else patient-level iterative stratification, Sechidis et al.
2011, as VinDr-Mammo's own split) and which shard of a sharded conversion converts it."""
from __future__ import annotations

import hashlib
import re
from typing import Dict, Iterable, Sequence, Set

import numpy as np

from .records import ConversionError, ImageRecord


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


def _labels(records: Sequence[ImageRecord]) -> set:
    out = set()
    for rec in records:
        if rec.fields.get('breast_birads') is not None:
            out.add(f"breast-birads-{rec.fields['breast_birads']}")
        for b in list(rec.boxes) + list(rec.pending):
            for c in b.categories:
                out.add(f'{c}|{b.birads}')
            if b.pathology:
                out.add(f'pathology-{b.pathology}')
    return out


def assign_splits(records: Dict[str, ImageRecord], val_fraction: float, test_fraction: float,
                  seed: int) -> Dict[str, str]:
    """source id -> 'train' | 'val' | 'test'. The official test split where records carry one, else a stratified
    share ``test_fraction`` of the patients; validation is a stratified share ``val_fraction`` of the patients
    outside test. Stratified on breast BI-RADS, categories x finding BI-RADS and pathology."""
    by_patient: Dict[str, list] = {}
    for rec in records.values():
        by_patient.setdefault(rec.patient_id, []).append(rec)
    official = any(r.split is not None for r in records.values())
    if official:
        test = {p for p, recs in by_patient.items() if any(r.split == 'test' for r in recs)}
    elif test_fraction > 0:
        test = iterative_stratification({p: _labels(r) for p, r in by_patient.items()}, test_fraction, seed + 1)
    else:
        test = set()
    rest = {p: _labels(r) for p, r in by_patient.items() if p not in test}
    share = val_fraction if official else val_fraction / max(1.0 - test_fraction, 1e-9)
    val = iterative_stratification(rest, min(share, 1.0), seed) if val_fraction > 0 and rest else set()
    out = {}
    for key, rec in records.items():
        if official:
            out[key] = 'test' if rec.split == 'test' else 'val' if rec.patient_id in val else 'train'
        else:
            out[key] = 'test' if rec.patient_id in test else 'val' if rec.patient_id in val else 'train'
    return out


def parse_shard(text: str) -> tuple:
    """'K/N' -> (K, N) with 1 <= K <= N."""
    m = re.fullmatch(r'\s*(\d+)\s*/\s*(\d+)\s*', text or '')
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ConversionError(f'--shard {text!r}: expected K/N with 1 <= K <= N, e.g. 3/8')
    return int(m.group(1)), int(m.group(2))


def shard_of(study_id: str, n: int) -> int:
    """The shard (1..n) of a study: a hash of its id, so a study never spans shards and every machine agrees."""
    return int(hashlib.sha1(study_id.encode()).hexdigest()[:12], 16) % n + 1
