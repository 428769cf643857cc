"""A synthetic mini-MIAS release (``mammo-det synth --format mias``): 1024 x 1024 8-bit binary PGMs and
``Info.txt`` (origin bottom-left), with the release's traps planted (``TRAPS``)."""
from __future__ import annotations

import os

import cv2
import numpy as np

from mammo_det.fileio import atomic_path, write_text

from .common import Trap, new_truth, plant, render_boxes

MIAS_CATEGORY = {'CALC': 'Suspicious Calcification', 'CIRC': 'Mass', 'SPIC': 'Mass', 'MISC': 'Mass',
                 'ARCH': 'Architectural Distortion', 'ASYM': 'Asymmetry'}
SIZE = 1024
TRAPS = dict(
    two_rows=Trap('a film with two abnormalities, one row each', 'film', at=(2,)),
    unlocated=Trap('an abnormality row without a position (4 tokens)', 'film', at=(4, 7),
                   expect='the film left out, reported in skipped_images'),
    past_edge=Trap("a circle running past the film's edge", 'film', at=(5,), expect='the box clipped'),
)
UNLOCATED_ROWS = {4: 'CALC B', 7: 'MISC M'}  # class and severity of the unlocated rows
NORMAL_EVERY = 3  # film n is normal when n % 3 == 1 (before any trap)


def _film(n: int, rng: np.random.Generator, truth: dict) -> tuple:
    """(Info.txt rows of film n, its findings as (category, box, severity))."""
    ref = f'mdb{n:03d}'
    lat = 'L' if n % 2 == 0 else 'R'
    tissue = 'FGD'[int(rng.integers(3))]
    classes = list(MIAS_CATEGORY)
    if n % NORMAL_EVERY == 1:
        plan = []
    elif TRAPS['two_rows'].on(n):
        plan = ['CIRC', 'CALC']
        plant(truth, 'two_rows', ref)
    else:
        plan = [classes[int(rng.integers(len(classes)))]]
    findings, rows = [], []
    for k, cls in enumerate(plan):
        r = int(rng.integers(25, 60))
        cx = int(rng.integers(150, 600)) if lat == 'L' else int(rng.integers(424, 874))
        cy = int(rng.integers(200, 824))
        if TRAPS['past_edge'].on(n) and k == 0:
            cx = SIZE - 20 if lat == 'R' else 20
            plant(truth, 'past_edge', ref)
        sev = 'BM'[int(rng.integers(2))]
        box = (max(cx - r, 0), max(cy - r, 0), min(cx + r, SIZE), min(cy + r, SIZE))
        findings.append((MIAS_CATEGORY[cls], box, sev))
        rows.append(f'{ref} {tissue} {cls} {sev} {cx} {SIZE - cy} {r}')
    if TRAPS['unlocated'].on(n):
        rows = rows + [f'{ref} {tissue} {UNLOCATED_ROWS[n]}']
        plant(truth, 'unlocated', ref)
        truth['expected_skips'].append(dict(key=ref, reason='unlocated'))
    return rows or [f'{ref} {tissue} NORM'], findings


def write_mias(root: str, films: int = 16, seed: int = 0) -> dict:
    """mini-MIAS: header and note lines, NORM rows of 3 tokens, and ``TRAPS``."""
    rng = np.random.default_rng(seed)
    lines = ['MIAS database: reference, background tissue, class, severity, x, y (origin bottom-left), radius',
             '(synthetic, written by mammo-det)', '']
    truth = new_truth(TRAPS)
    os.makedirs(root, exist_ok=True)
    for n in range(1, films + 1):
        ref = f'mdb{n:03d}'
        lat = 'L' if n % 2 == 0 else 'R'
        rows, findings = _film(n, rng, truth)
        lines += rows
        pixels = render_boxes(ref, lat, 'MLO', SIZE, SIZE, int(rng.integers(1 << 30)),
                              [(c, 4, box) for c, box, _ in findings])
        with atomic_path(os.path.join(root, f'{ref}.pgm')) as tmp:
            cv2.imwrite(tmp + '.pgm', np.rint(pixels * 255).astype(np.uint8))
            os.replace(tmp + '.pgm', tmp)
        truth['images'][ref] = dict(split=None, laterality=lat, view='MLO', boxes=[
            dict(category=c, birads=None, birads_raw=None, pathology='benign' if sev == 'B' else 'malignant',
                 xyxy=tuple(float(v) for v in box), planted=None) for c, box, sev in findings])
    lines.append('*NOTE 3* (a note line, not a row)')
    write_text(os.path.join(root, 'Info.txt'), '\n'.join(lines) + '\n')
    return truth
