"""The conversion core every dataset adapter feeds: one record per image in, the same COCO out.

An adapter (``vindr_mammo``, ``cbis_ddsm``, ``inbreast``, ``mias``, ``embed``) parses its release into
:class:`ImageRecord` s (file, study, patient, laterality, view, image fields, boxes with category, BI-RADS and
pathology); this module does the rest, the same way for all of them:

* reading (DICOM, or PGM/PNG for film sets) and preprocessing (display transform, a breast crop that never cuts a
  box, the resize), with the transform recorded per image;
* a process pool; atomic PNG writes; a journal so that a rerun after a crash or kill redoes only what is missing;
* splits: the official one where the release has it, else a seeded, patient-level stratified one (a patient never
  spans two splits, validation included);
* ``--shard K/N``: only the studies whose hash falls in shard K (splits are decided on the whole release first, so
  every shard agrees), for :mod:`data_converters.merge` to join;
* ``OUT/annotations/instances_{train,val,test}.json`` and ``OUT/report.json`` (what was skipped, and why).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from mammo_det.fileio import atomic_path, write_json
from mammo_det.vocab import resolve_classes

from .splits import iterative_stratification

JOURNAL = '.journal.jsonl'
FORMAT_VERSION = 1  # bump when the image processing changes, so old journals are not reused
SAFE_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$')
PATHOLOGIES = ('malignant', 'benign')
RASTER_SUFFIXES = ('.pgm', '.png', '.tif', '.tiff', '.jpg', '.jpeg')


class ConversionError(ValueError):
    """Bad input; the message names the file, the row or the field."""


@dataclass
class Box:
    categories: List[str]
    birads: Optional[int]
    xyxy: tuple  # original pixels, clipped to the image
    line: int = 0  # where the box comes from, for messages
    birads_raw: Optional[str] = None  # the dataset's own assessment text
    pathology: Optional[str] = None  # 'malignant', 'benign' or None


@dataclass
class MaskBox:
    """A box the worker reads from a mask file (CBIS-DDSM): which of ``candidates`` is the mask is decided by
    content (binary, the image's size), not by the CSV column."""
    categories: List[str]
    birads: Optional[int]
    birads_raw: Optional[str]
    pathology: Optional[str]
    candidates: List[str]
    where: str  # 'file line N' for the report


@dataclass
class ImageRecord:
    key: str  # the image's id in the dataset, also the PNG name (validated as path-safe)
    study_id: str  # path-safe; the PNG folder and the bootstrap unit
    patient_id: str
    source: str  # the image file
    laterality: str
    view_position: str
    split: Optional[str] = None  # 'train' or 'test' where the release has an official split
    width: Optional[int] = None  # expected size, when the release states it
    height: Optional[int] = None
    fields: dict = field(default_factory=dict)  # more COCO image fields (breast_birads, dataset identifiers ...)
    boxes: List[Box] = field(default_factory=list)
    masks: List[MaskBox] = field(default_factory=list)
    first_line: int = 0


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


def fail_or_skip(msg: str, on_error: str, skipped: list) -> None:
    if on_error == 'fail':
        raise ConversionError(msg)
    skipped.append(msg)


@dataclass
class ParseLog:
    """What an adapter left out while parsing its release, each with the reason, and oddities that changed
    nothing; all of it goes to ``report.json``."""
    on_error: str = 'fail'
    rows: List[str] = field(default_factory=list)  # bad rows: stop the run, or skip them with --on-error skip
    images: List[str] = field(default_factory=list)  # images the converter must not use (documented per dataset)
    boxes: List[str] = field(default_factory=list)  # boxes it cannot place
    warnings: List[str] = field(default_factory=list)

    def row(self, msg: str) -> None:
        fail_or_skip(msg, self.on_error, self.rows)


def check_id(value: str, what: str) -> str:
    """An id used in output paths: letters, digits, '.', '_', '-' (no separators, no '..')."""
    if not SAFE_ID.match(value or '') or '..' in value:
        raise ValueError(f'{what} {value!r} is not a path-safe id (letters, digits, ".", "_", "-")')
    return value


def parse_shard(text: str) -> tuple:
    """'K/N' -> (K, N) with 1 <= K <= N."""
    m = re.fullmatch(r'\s*(\d+)\s*/\s*(\d+)\s*', text or '')
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ConversionError(f'--shard {text!r}: expected K/N with 1 <= K <= N, e.g. 3/8')
    return int(m.group(1)), int(m.group(2))


def shard_of(study_id: str, n: int) -> int:
    """The shard (1..n) of a study: a hash of its id, so a study never spans shards and every machine agrees."""
    return int(hashlib.sha1(study_id.encode()).hexdigest()[:12], 16) % n + 1


# --- splits --------------------------------------------------------------------------------------------------

def _labels(records: Sequence[ImageRecord]) -> set:
    out = set()
    for rec in records:
        if rec.fields.get('breast_birads') is not None:
            out.add(f"breast-birads-{rec.fields['breast_birads']}")
        for b in list(rec.boxes) + list(rec.masks):
            for c in b.categories:
                out.add(f'{c}|{b.birads}')
            if b.pathology:
                out.add(f'pathology-{b.pathology}')
    return out


def assign_splits(records: Dict[str, ImageRecord], val_fraction: float, test_fraction: float,
                  seed: int) -> Dict[str, str]:
    """key -> 'train' | 'val' | 'test'. The official test split where records carry one, else a stratified share
    ``test_fraction`` of the patients; validation is a stratified share ``val_fraction`` of the patients outside
    test. Stratified on breast BI-RADS, categories x finding BI-RADS and pathology (iterative stratification)."""
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


# --- the worker ------------------------------------------------------------------------------------------------

def _keep_image_buffers() -> None:
    """Makes glibc keep freed image-sized buffers for the next image instead of unmapping them.

    By default glibc serves a large allocation (the 20 MB pixel data of a 3518 x 2800 DICOM, the decoded array, the
    crop) with fresh zeroed pages from the kernel and unmaps it when freed, so every image pays thousands of page
    faults: 20-40 ms an image, measured by tools/benchmarks/convert_speed.py (ours/floor 1.25-1.35x, 0.97-1.06x with
    this). A worker holds one image at a time, so keeping the freed memory raises its peak by one image's buffers.
    """
    import ctypes

    try:
        libc = ctypes.CDLL('libc.so.6')
    except OSError:
        return  # not glibc: nothing to tune
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest allowed value on 64-bit
    libc.mallopt(m_trim_threshold, 256 << 20)


def _init_worker() -> None:
    import cv2
    cv2.setNumThreads(1)  # one image per process: threads inside each would oversubscribe the cores
    _keep_image_buffers()


def read_source(path: str):
    """A DICOM, or a film scan (PGM, PNG, TIFF, JPEG) as a DicomImage with a minimal MONOCHROME2 header."""
    from mammo_det.io import dicom as dio

    if not path.lower().endswith(RASTER_SUFFIXES):
        return dio.read_dicom(path)
    import cv2
    from pydicom.dataset import Dataset

    if not os.path.exists(path):
        raise dio.DicomError(path, 'file not found')
    pixels = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise dio.DicomError(path, 'not a readable image')
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
    header = Dataset()
    header.PhotometricInterpretation = 'MONOCHROME2'
    header.BitsStored = 8 * pixels.dtype.itemsize
    header.PixelRepresentation = 0
    return dio.DicomImage(pixels, path, header)


def mask_box(spec: MaskBox, width: int, height: int) -> tuple:
    """(xyxy of the mask's foreground, None) or (None, reason): the candidate that is binary {0, 255} (or {0, 1})
    at the image's size is the mask; a binary candidate of another size is the known CBIS-DDSM trait of a mask
    that does not fit its image."""
    import pydicom

    from mammo_det.io.dicom import DicomError

    seen_sizes = []
    for path in spec.candidates:
        try:
            head = pydicom.dcmread(path, stop_before_pixels=True)
            rows, cols = int(head.Rows), int(head.Columns)
        except Exception:  # noqa: BLE001 - a missing or broken candidate is just not the mask
            continue
        if (cols, rows) != (width, height):
            if rows * cols > 0.25 * width * height:  # a crop is small; this looks like a mask of another size
                seen_sizes.append(f'{cols}x{rows}')
            continue
        try:
            px = read_source(path).pixels
        except DicomError:
            continue
        values = np.unique(px[::7, ::7])
        if not set(values.tolist()) <= {0, 1, 255}:
            continue  # the full-size crop of a swapped pair, or an image
        # The extent from row and column projections: a tenth of the cost of np.nonzero on a full-size mask.
        ys, xs = np.flatnonzero(px.any(axis=1)), np.flatnonzero(px.any(axis=0))
        if not len(xs):
            return None, f'{spec.where}: the mask {path} is empty'
        return (float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1)), None
    if seen_sizes:
        return None, (f'{spec.where}: mask size {", ".join(seen_sizes)} differs from the image\'s {width}x{height} '
                      '(a known CBIS-DDSM trait; the abnormality is left out)')
    return None, f'{spec.where}: no mask found among {spec.candidates}'


def convert_image(task: tuple) -> dict:
    """Converts one image to a PNG (worker function). Returns the record for the journal, or an error."""
    from mammo_det.io.dicom import DicomError, device
    from mammo_det.io.preprocess import preprocess_image

    rec_id, source, png_path, height, width, boxes, opts, key = task[:8]
    masks = task[8] if len(task) > 8 else []
    try:
        img = read_source(source)
        mask_boxes, problems = [], []
        for spec in masks:
            box, problem = mask_box(spec, img.width, img.height)
            mask_boxes.append(box)
            if problem:
                problems.append(problem)
        crop_boxes = list(boxes) + [b for b in mask_boxes if b is not None]
        expect = (width, height) if width is not None and height is not None else None
        out, t, voi_desc = preprocess_image(img, boxes=crop_boxes, expect_size=expect, **opts)
        write_png(png_path, out)
        manufacturer, model = device(img.header)
        res = dict(image_id=rec_id, key=key, transform=t.to_dict(), voi=voi_desc, manufacturer=manufacturer,
                   manufacturer_model=model)
        if masks:
            res.update(mask_boxes=mask_boxes, problems=problems)
        return res
    except DicomError as exc:
        return dict(image_id=rec_id, error=str(exc))
    except OSError as exc:
        return dict(image_id=rec_id, error=f'{png_path}: cannot write ({exc})')


def write_png(path: str, image: np.ndarray) -> None:
    """Writes an 8- or 16-bit grayscale PNG atomically (temporary name, then rename)."""
    import cv2

    with atomic_path(path) as tmp:
        if not cv2.imwrite(tmp, image):
            raise OSError(f'cv2.imwrite failed for {tmp}')


# --- journal, plan, run ----------------------------------------------------------------------------------------

def _load_journal(path: str, fingerprint: dict) -> Dict[str, dict]:
    done: Dict[str, dict] = {}
    if not os.path.exists(path):
        return done
    with open(path) as fh:
        lines = fh.read().splitlines()
    try:
        if not lines or json.loads(lines[0]).get('options') != fingerprint:
            return done  # other options: nothing is reusable
    except json.JSONDecodeError:
        return done
    for line in lines[1:]:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # the last line of a killed run may be cut
        done[rec['image_id']] = rec
    return done


def _remove_partial_pngs(images_dir: str) -> None:
    """Deletes temporary PNGs a killed run left behind (a finished PNG is always renamed from one)."""
    for dirpath, _, names in os.walk(images_dir):
        for n in names:
            if '.tmp' in n:
                os.remove(os.path.join(dirpath, n))


def record_key(rec: ImageRecord) -> str:
    """Changes when what the image's conversion depends on (file, size, boxes for the crop, masks) changes."""
    parts = [rec.height, rec.width, [b.xyxy for b in rec.boxes]]
    if rec.masks:  # (without masks: the same key as journals of earlier versions)
        parts.append([m.candidates for m in rec.masks])
    text = json.dumps(parts)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def png_path(out: str, rec: ImageRecord) -> str:
    return os.path.join(out, 'images', rec.study_id, f'{rec.key}.png')


def _with_device(prev: dict, source: str) -> dict:
    from mammo_det.io.dicom import DicomError, read_device

    manufacturer = model = None
    if not source.lower().endswith(RASTER_SUFFIXES):
        try:
            manufacturer, model = read_device(source)
        except DicomError:
            pass
    return dict(prev, manufacturer=manufacturer, manufacturer_model=model)


def _plan(out: str, records: Dict[str, ImageRecord], opts: ConvertOptions, done: Dict[str, dict]) -> tuple:
    """(results reused from an earlier run, worker tasks for the rest): an image is reused when the journal has
    it with the same record key and its PNG exists."""
    results: Dict[str, dict] = {}
    tasks = []
    popts = dict(voi=opts.voi, window_index=opts.window_index, bit_depth=opts.bit_depth, crop=opts.crop,
                 max_size=opts.max_size)
    for key in sorted(records):
        rec = records[key]
        rkey = record_key(rec)
        png = png_path(out, rec)
        prev = done.get(key)
        if prev is not None and prev.get('key') == rkey and os.path.exists(png):
            if 'manufacturer' not in prev:  # journaled by a version that did not record the device
                prev = _with_device(prev, rec.source)
            results[key] = prev
            continue
        task = (key, rec.source, png, rec.height, rec.width, [b.xyxy for b in rec.boxes], popts, rkey)
        tasks.append(task + (rec.masks,) if rec.masks else task)
    return results, tasks


def _run(tasks: list, total: int, journal_path: str, opts: ConvertOptions, results: Dict[str, dict]) -> List[str]:
    """Converts ``tasks`` in a process pool, journaling each finished image; returns the skipped files."""
    from multiprocessing import get_context

    from tqdm import tqdm

    skipped_files: List[str] = []
    workers = min(opts.workers or os.cpu_count() or 1, max(len(tasks), 1))
    bar = tqdm(total=total, initial=total - len(tasks), desc='convert', unit='img', disable=not opts.progress)
    with open(journal_path, 'a') as journal:
        pool = get_context('spawn').Pool(workers, initializer=_init_worker) if workers > 1 else None
        if pool is None and tasks:
            _keep_image_buffers()  # this process is the worker
        try:
            it = pool.imap_unordered(convert_image, tasks, chunksize=1) if pool else map(convert_image, tasks)
            for res in it:
                bar.update()
                if 'error' in res:
                    fail_or_skip(res['error'], opts.on_error, skipped_files)
                    continue
                results[res['image_id']] = res
                journal.write(json.dumps(res) + '\n')
                journal.flush()
        finally:
            if pool is not None:
                pool.terminate()
            bar.close()
    return skipped_files


# --- COCO ------------------------------------------------------------------------------------------------------

def coco_categories(classes: Sequence[str]) -> List[dict]:
    return [dict(id=i, name=c, supercategory='finding') for i, c in enumerate(classes, 1)]


def image_sort_key(im: dict) -> tuple:
    """The order of images in a split file (also how merge re-orders shards): study, side, view, id."""
    return (im['study_id'], im['laterality'], im['view_position'], im['source_id'])


def _boxes(rec: ImageRecord, res: dict) -> List[Box]:
    out = list(rec.boxes)
    for spec, xyxy in zip(rec.masks, res.get('mask_boxes', [])):
        if xyxy is not None:
            out.append(Box(spec.categories, spec.birads, tuple(xyxy), 0, spec.birads_raw, spec.pathology))
    return out


def build_coco(records: List[ImageRecord], results: Dict[str, dict], classes: Sequence[str], dataset: str,
               description: str) -> dict:
    """The COCO dict of one split: images in a stable order, ids from 1, one annotation per (box, category)."""
    from mammo_det.io.geometry import ImageTransform, to_converted

    cat_ids = {c: i for i, c in enumerate(classes, 1)}
    images, anns = [], []
    entries = []
    for rec in records:
        res = results[rec.key]
        t = ImageTransform.from_dict(res['transform'])
        entries.append((dict(
            file_name=f'{rec.study_id}/{rec.key}.png', width=t.out_width, height=t.out_height, dataset=dataset,
            source_id=rec.key, study_id=rec.study_id, patient_id=rec.patient_id, laterality=rec.laterality,
            view_position=rec.view_position, **rec.fields, orig_width=t.orig_width, orig_height=t.orig_height,
            transform=res['transform'], voi=res['voi'], manufacturer=res.get('manufacturer'),
            manufacturer_model=res.get('manufacturer_model')), rec, res, t))
    for im, rec, res, t in sorted(entries, key=lambda e: image_sort_key(e[0])):
        img_id = len(images) + 1
        images.append(dict(id=img_id, **im))
        for box in _boxes(rec, res):
            x0, y0, x1, y1 = (float(v) for v in to_converted(np.array([box.xyxy]), t)[0])
            for cat in box.categories:
                if cat not in cat_ids:
                    continue
                w, h = x1 - x0, y1 - y0
                anns.append(dict(id=len(anns) + 1, image_id=img_id, category_id=cat_ids[cat],
                                 bbox=[round(x0, 3), round(y0, 3), round(w, 3), round(h, 3)],
                                 area=round(w * h, 3), iscrowd=0, birads=box.birads, birads_raw=box.birads_raw,
                                 pathology=box.pathology))
    return dict(info=dict(description=description, version=str(FORMAT_VERSION)),
                images=images, annotations=anns, categories=coco_categories(classes))


def split_counts(coco: dict, classes: Sequence[str]) -> dict:
    per_cat = {c: 0 for c in classes}
    for a in coco['annotations']:
        per_cat[classes[a['category_id'] - 1]] += 1
    positives = len({a['image_id'] for a in coco['annotations']})
    return dict(images=len(coco['images']), studies=len({im['study_id'] for im in coco['images']}),
                patients=len({im['patient_id'] for im in coco['images']}), positive_images=positives,
                negative_images=len(coco['images']) - positives, annotations=len(coco['annotations']),
                per_category=per_cat)


def _write_splits(out: str, records: Dict[str, ImageRecord], splits: Dict[str, str], results: Dict[str, dict],
                  classes: Sequence[str], dataset: str, description: str) -> dict:
    """Writes instances_{train,val,test}.json; returns the per-split counts for the report."""
    counts = {}
    for split in ('train', 'val', 'test'):
        recs = [r for k, r in records.items() if splits[k] == split and k in results]
        coco = build_coco(recs, results, classes, dataset, description)
        write_json(os.path.join(out, 'annotations', f'instances_{split}.json'), coco)
        counts[split] = split_counts(coco, classes)
    return counts


def convert_release(read_release, root: str, out: str, opts: Optional[ConvertOptions], dataset: str,
                    description: str) -> dict:
    """What every adapter's ``convert`` does: ``read_release(root, log)`` -> records -> :func:`convert_records`."""
    opts = opts or ConvertOptions()
    start = time.time()
    log = ParseLog(opts.on_error)
    records = read_release(root, log)
    return convert_records(records, root, out, opts, dataset, description, log, start)


def convert_records(records: Dict[str, ImageRecord], root: str, out: str, opts: ConvertOptions, dataset: str,
                    description: str, log: ParseLog, start: Optional[float] = None) -> dict:
    """Converts parsed records into COCO at ``out``; returns the report (also ``report.json``), with what the
    adapter left out while parsing (``log``) and the boxes the workers could not place."""
    start = time.time() if start is None else start
    if opts.on_error not in ('fail', 'skip'):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {opts.on_error!r}")
    if opts.bit_depth not in (8, 16):
        raise ValueError(f'bit_depth must be 8 or 16, got {opts.bit_depth}')
    if not records:
        raise ConversionError(f'{root}: no images to convert')
    classes = resolve_classes(opts.classes)
    splits = assign_splits(records, opts.val_fraction, opts.test_fraction, opts.seed)
    total = len(records)
    if opts.shard:
        k, n = opts.shard
        records = {key: r for key, r in records.items() if shard_of(r.study_id, n) == k}
    os.makedirs(out, exist_ok=True)
    fingerprint = opts.fingerprint()
    journal_path = os.path.join(out, JOURNAL)
    done = _load_journal(journal_path, fingerprint)
    results, tasks = _plan(out, records, opts, done)
    if os.path.isdir(os.path.join(out, 'images')) and tasks:
        _remove_partial_pngs(os.path.join(out, 'images'))
    if not done:
        with open(journal_path, 'w') as fh:
            fh.write(json.dumps({'options': fingerprint}) + '\n')
    skipped_files = _run(tasks, len(records), journal_path, opts, results)
    skipped_boxes = list(log.boxes) + [p for k in sorted(results) for p in results[k].get('problems', [])
                                       if k in records]
    report = dict(dataset=dataset, root=os.path.abspath(root), classes=classes, options=fingerprint,
                  shard=list(opts.shard) if opts.shard else None, release_images=total,
                  split_options=dict(val_fraction=opts.val_fraction, test_fraction=opts.test_fraction,
                                     seed=opts.seed),
                  splits={}, skipped_rows=log.rows, skipped_images=log.images,
                  skipped_files=skipped_files, skipped_boxes=skipped_boxes, warnings=log.warnings,
                  reused_images=len(records) - len(tasks), converted_images=len(tasks) - len(skipped_files))
    report['splits'] = _write_splits(out, records, splits, results, classes, dataset, description)
    report['seconds'] = round(time.time() - start, 2)
    write_json(os.path.join(out, 'report.json'), report)
    return report
