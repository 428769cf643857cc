"""The conversion core every dataset adapter feeds: records in, PNGs and COCO out, the same way for all of them.

An adapter (``vindr_mammo``, ``cbis_ddsm``, ``inbreast``, ``mias``, ``embed``) parses its release into
:class:`~data_converters.records.ImageRecord` s; where a dataset needs something in the worker it hands over a
hook (``locate``, for boxes found only once the image is read). This module plans the work and runs it:

* a journal (``OUT/.journal.jsonl``) so that a rerun after a crash or kill redoes only what is missing;
* a process pool (:mod:`.worker`: read, preprocess, atomic PNG write);
* splits (:mod:`.splits`: the official one where the release has it, else seeded and patient-level);
* ``--shard K/N``: only the studies whose hash falls in shard K (splits are decided on the whole release first,
  so every shard agrees), for :mod:`data_converters.merge` to join;
* ``OUT/annotations/instances_{train,val,test}.json`` (:mod:`.coco`) and ``OUT/report.json`` (what was skipped,
  and why).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from mammo_det.fileio import write_json
from mammo_det.vocab import resolve_classes

from .boxes import check_records
from .coco import FORMAT_VERSION, write_splits
from .records import ConversionError, ImageRecord, ParseLog, fail_or_skip
from .splits import assign_splits, shard_of
from .worker import ImageTask, run_tasks

JOURNAL = '.journal.jsonl'
JOURNAL_VERSION = 3  # the layout of a journal entry; a journal of another layout is not reused


@dataclass
class ConvertOptions:
    max_size: Optional[int] = 2048
    bit_depth: int = 8
    crop: bool = True
    voi: str = 'auto'
    window_index: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.2  # only where the release has no official test split
    seed: int = 0
    classes: Optional[Sequence[str]] = None
    workers: int = 0  # 0: all cores
    on_error: str = 'fail'
    progress: bool = True
    shard: Optional[tuple] = None  # (k, n): convert shard k of n (1-based)

    def fingerprint(self) -> dict:
        """The options that change the images; a journal is reused only when they match."""
        return dict(version=FORMAT_VERSION, max_size=self.max_size, bit_depth=self.bit_depth, crop=self.crop,
                    voi=self.voi, window_index=self.window_index)

    def preprocess(self) -> dict:
        """The keyword arguments of the images' preprocessing."""
        return dict(voi=self.voi, window_index=self.window_index, bit_depth=self.bit_depth, crop=self.crop,
                    max_size=self.max_size)

    def check(self) -> List[str]:
        """The classes to convert; raises :class:`ConversionError` naming a bad option."""
        if self.on_error not in ('fail', 'skip'):
            raise ConversionError(f"--on-error must be 'fail' or 'skip', got {self.on_error!r}")
        if self.bit_depth not in (8, 16):
            raise ConversionError(f'--bit-depth must be 8 or 16, got {self.bit_depth}')
        try:
            return resolve_classes(self.classes)
        except ValueError as exc:
            raise ConversionError(f'--classes: {exc}') from None


# --- journal and plan ------------------------------------------------------------------------------------------

def load_journal(path: str, fingerprint: dict) -> Dict[str, dict]:
    """source id -> journal entry of the images an earlier run finished with the same options."""
    done: Dict[str, dict] = {}
    if not os.path.exists(path):
        return done
    with open(path) as fh:
        lines = fh.read().splitlines()
    try:
        if not lines or json.loads(lines[0]) != _journal_header(fingerprint):
            return done  # other options or another journal layout: nothing is reusable
    except json.JSONDecodeError:
        return done
    for line in lines[1:]:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # the last line of a killed run may be cut
        done[entry['source_id']] = entry
    return done


def _journal_header(fingerprint: dict) -> dict:
    return dict(options=fingerprint, journal=JOURNAL_VERSION)


def remove_partial_pngs(images_dir: str) -> None:
    """Deletes temporary PNGs a killed run left behind (a finished PNG is always renamed from one)."""
    for dirpath, _, names in os.walk(images_dir):
        for n in names:
            if '.tmp' in n:
                os.remove(os.path.join(dirpath, n))


def input_hash(rec: ImageRecord) -> str:
    """Changes when what the image's conversion depends on (file size, boxes for the crop, pending boxes'
    sources) changes."""
    parts = [rec.height, rec.width, [b.xyxy for b in rec.boxes]]
    if rec.pending:
        parts.append([p.sources for p in rec.pending])
    return hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:16]


def png_path(out: str, rec: ImageRecord) -> str:
    return os.path.join(out, 'images', rec.study_id, f'{rec.source_id}.png')


def plan_tasks(out: str, records: Dict[str, ImageRecord], opts: ConvertOptions, done: Dict[str, dict],
               locate: Optional[Callable] = None) -> tuple:
    """(results reused from an earlier run, worker tasks for the rest): an image is reused when the journal has it
    with the same input hash and its PNG exists."""
    results: Dict[str, dict] = {}
    tasks = []
    for source_id in sorted(records):
        rec = records[source_id]
        digest, png = input_hash(rec), png_path(out, rec)
        prev = done.get(source_id)
        if prev is not None and prev.get('input_hash') == digest and os.path.exists(png):
            results[source_id] = prev
            continue
        expect = (rec.width, rec.height) if rec.width is not None and rec.height is not None else None
        tasks.append(ImageTask(source_id=source_id, source=rec.source, png=png, expect_size=expect,
                               crop_boxes=[b.xyxy for b in rec.boxes], preprocess=opts.preprocess(), input_hash=digest,
                               pending=list(rec.pending), locate=locate if rec.pending else None,
                               view=rec.view_position, laterality=rec.laterality, spacing=rec.spacing))
    return results, tasks


def _run(tasks: List[ImageTask], total: int, journal_path: str, opts: ConvertOptions,
         results: Dict[str, dict]) -> List[str]:
    """Converts ``tasks``, journaling each finished image; returns the skipped files."""
    from tqdm import tqdm

    skipped_files: List[str] = []
    bar = tqdm(total=total, initial=total - len(tasks), desc='convert', unit='img', disable=not opts.progress)
    with open(journal_path, 'a') as journal:
        try:
            for res in run_tasks(tasks, opts.workers or os.cpu_count() or 1):
                bar.update()
                if 'error' in res:
                    fail_or_skip(res['error'], opts.on_error, skipped_files)
                    continue
                results[res['source_id']] = res
                journal.write(json.dumps(res) + '\n')
                journal.flush()
        finally:
            bar.close()
    return skipped_files


# --- the whole conversion --------------------------------------------------------------------------------------

def convert_release(read_release: Callable, root: str, out: str, opts: Optional[ConvertOptions], dataset: str,
                    description: str, locate: Optional[Callable] = None) -> dict:
    """What every adapter's conversion does: ``read_release(root, log)`` -> records -> :func:`convert_records`."""
    opts = opts or ConvertOptions()
    start = time.time()
    log = ParseLog(opts.on_error)
    opts.check()
    records = read_release(root, log)
    return convert_records(records, root, out, opts, dataset, description, log, start, locate)


def convert_records(records: Dict[str, ImageRecord], root: str, out: str, opts: ConvertOptions, dataset: str,
                    description: str, log: ParseLog, start: Optional[float] = None,
                    locate: Optional[Callable] = None) -> dict:
    """Converts parsed records into COCO at ``out``; returns the report (also ``report.json``), with what the
    adapter left out while parsing (``log``) and the boxes the workers could not place."""
    start = time.time() if start is None else start
    classes = opts.check()
    if not records:
        raise ConversionError(f'{root}: no images to convert')
    clipped = check_records(records, log)  # before the splits: a box outside its image makes no positive
    splits = assign_splits(records, opts.val_fraction, opts.test_fraction, opts.seed)
    total = len(records)
    if opts.shard:
        k, n = opts.shard
        records = {key: r for key, r in records.items() if shard_of(r.study_id, n) == k}
    os.makedirs(out, exist_ok=True)
    fingerprint = opts.fingerprint()
    journal_path = os.path.join(out, JOURNAL)
    done = load_journal(journal_path, fingerprint)
    results, tasks = plan_tasks(out, records, opts, done, locate)
    if os.path.isdir(os.path.join(out, 'images')) and tasks:
        remove_partial_pngs(os.path.join(out, 'images'))
    if not done:
        with open(journal_path, 'w') as fh:
            fh.write(json.dumps(_journal_header(fingerprint)) + '\n')
    skipped_files = _run(tasks, len(records), journal_path, opts, results)
    skipped_boxes = list(log.boxes) + [p for k in sorted(results) for p in results[k].get('problems', [])
                                       if k in records]
    report = dict(dataset=dataset, root=os.path.abspath(root), classes=classes, options=fingerprint,
                  shard=list(opts.shard) if opts.shard else None, release_images=total,
                  split_options=dict(val_fraction=opts.val_fraction, test_fraction=opts.test_fraction,
                                     seed=opts.seed),
                  splits={}, skipped_rows=log.rows, skipped_images=log.images,
                  skipped_files=skipped_files, skipped_boxes=skipped_boxes, warnings=log.warnings,
                  left_out_labels=dict(sorted(log.left_out_labels.items())),
                  reused_images=len(records) - len(tasks), converted_images=len(tasks) - len(skipped_files))
    notes: Dict[str, list] = dict(dropped=[], clipped=[])
    report['splits'] = write_splits(out, records, splits, results, classes, dataset, description, notes)
    report['skipped_boxes'] += notes['dropped']
    report['clipped_boxes'] = [note for key, note in clipped if key in records] + notes['clipped']  # this shard's
    report['seconds'] = round(time.time() - start, 2)
    write_json(os.path.join(out, 'report.json'), report)
    return report
