"""Joins the outputs of ``mammo-det convert --shard K/N`` (K = 1..N) into one dataset: the same images, split files
and annotations as one unsharded conversion (ids included), and one report.

Every shard decided the splits on the whole release, so a study has the same split in all of them; a study lives
in exactly one shard. Images are hard-linked where the filesystem allows (copied otherwise), so merging on the
cluster's shared disk costs no image data.
"""
from __future__ import annotations

import os
import shutil
import time
from typing import List, Sequence

from mammo_det.fileio import atomic_path, read_json, write_json

from .coco import SPLITS, image_sort_key, split_counts
from .records import ConversionError

MUST_AGREE = ('dataset', 'classes', 'options', 'split_options', 'release_images')


def _load(path: str):
    return read_json(path, 'a shard\'s output', ConversionError, hint='; is it a finished shard?')


def _check_shards(shard_dirs: Sequence[str]) -> List[dict]:
    reports = [_load(os.path.join(d, 'report.json')) for d in shard_dirs]
    first = reports[0]
    for d, r in zip(shard_dirs, reports):
        if not r.get('shard'):
            raise ConversionError(f'{d}: not a shard (converted without --shard)')
        for key in MUST_AGREE:
            if r.get(key) != first.get(key):
                raise ConversionError(f'{d}: {key} {r.get(key)!r} differs from {shard_dirs[0]}: {first.get(key)!r}')
    n = first['shard'][1]
    seen = {}
    for d, r in zip(shard_dirs, reports):
        k, rn = r['shard']
        if rn != n:
            raise ConversionError(f'{d}: shard {k}/{rn}, but {shard_dirs[0]} is one of {n}')
        if k in seen:
            raise ConversionError(f'{d} and {seen[k]} are both shard {k}/{n}')
        seen[k] = d
    missing = [k for k in range(1, n + 1) if k not in seen]
    if missing:
        raise ConversionError(f"shard(s) {', '.join(f'{k}/{n}' for k in missing)} missing: give all {n} shards")
    return reports


def _link(src: str, dst: str) -> None:
    if os.path.exists(dst) and os.path.getsize(dst) == os.path.getsize(src):
        return  # a rerun: already there
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def merge(out: str, shard_dirs: Sequence[str], images: bool = True, progress: bool = True) -> dict:
    """Merges shard outputs into ``out``; returns the merged report (also ``out/report.json``)."""
    from tqdm import tqdm

    start = time.time()
    if not shard_dirs:
        raise ConversionError('no shard folders given')
    if any(os.path.abspath(d) == os.path.abspath(out) for d in shard_dirs):
        raise ConversionError(f'{out}: the merged output must be a new folder, not one of the shards')
    reports = _check_shards(shard_dirs)
    merged = {}
    for split in SPLITS:
        parts = [(d, _load(os.path.join(d, 'annotations', f'instances_{split}.json'))) for d in shard_dirs]
        entries = []
        for d, coco in parts:
            anns = {}
            for a in coco['annotations']:
                anns.setdefault(a['image_id'], []).append(a)
            entries += [(image_sort_key(im), d, im, anns.get(im['id'], [])) for im in coco['images']]
        entries.sort(key=lambda e: e[0])
        for a, b in zip(entries, entries[1:]):
            if a[0] == b[0]:
                raise ConversionError(f"image {a[2]['file_name']} is in {a[1]} and {b[1]}: overlapping shards")
        out_images, out_anns = [], []
        for _, _d, im, anns in entries:
            new_id = len(out_images) + 1
            out_images.append(dict(im, id=new_id))
            out_anns += [dict(a, id=len(out_anns) + k + 1, image_id=new_id) for k, a in enumerate(anns)]
        base = parts[0][1]
        merged[split] = (dict(base, images=out_images, annotations=out_anns), entries)
    if images:
        total = sum(len(e) for _, e in merged.values())
        with tqdm(total=total, desc='merge', unit='img', disable=not progress) as bar:
            for _, entries in merged.values():
                for _, d, im, _ in entries:
                    _link(os.path.join(d, 'images', im['file_name']), os.path.join(out, 'images', im['file_name']))
                    bar.update()
    classes = reports[0]['classes']
    report = {k: reports[0][k] for k in ('dataset', 'classes', 'options', 'split_options', 'release_images')}
    report.update(root=reports[0].get('root'), shard=None, shards=[os.path.abspath(d) for d in shard_dirs],
                  splits={}, reused_images=sum(r['reused_images'] for r in reports),
                  converted_images=sum(r['converted_images'] for r in reports))
    for key in ('skipped_files',):  # found by the shard's own workers
        report[key] = [x for r in reports for x in r.get(key, [])]
    # found parsing the whole release, so the same in every shard
    for key, empty in (('skipped_rows', []), ('skipped_images', []), ('warnings', []), ('left_out_labels', {})):
        report[key] = reports[0].get(key, empty)
    # parse-time boxes are in every shard's list, the workers' ones in one: keep each once, in shard order
    report['skipped_boxes'] = list(dict.fromkeys(x for r in reports for x in r.get('skipped_boxes', [])))
    report['clipped_boxes'] = [x for r in reports for x in r.get('clipped_boxes', [])]  # each shard its own
    for split, (coco, _) in merged.items():
        write_json(os.path.join(out, 'annotations', f'instances_{split}.json'), coco)
        report['splits'][split] = split_counts(coco, classes)
    report['seconds'] = round(time.time() - start, 2)
    write_json(os.path.join(out, 'report.json'), report)
    return report
