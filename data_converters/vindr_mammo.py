"""VinDr-Mammo (DICOMs + CSVs) -> COCO: the library behind ``mammo-det convert``.

Output::

    OUT/images/<study_id>/<image_id>.png
    OUT/annotations/instances_{train,val,test}.json
    OUT/report.json

One COCO annotation per (box, label); boxes clipped to the image, then mapped through the recorded crop and
resize. Every image is kept, with or without findings. ``test`` is the official test split; ``val`` is a
study-level stratified share of the official training split.

A rerun after a crash or a kill resumes: each finished image is appended to ``OUT/.journal.jsonl`` after its
PNG is in place, so a rerun with the same options redoes only what is missing and writes the same JSON.
"""
from __future__ import annotations

import ast
import csv
import hashlib
import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from mammo_det.fileio import atomic_path, write_json
from mammo_det.vocab import (BIRADS_VALUES, BREAST_BIRADS_VALUES, DENSITIES, FINDING_CATEGORIES, LATERALITIES,
                             NO_FINDING, VIEWS, resolve_classes)

from .splits import iterative_stratification

ID_RE = re.compile(r'^[0-9a-f]{32}$')
REQUIRED = ('study_id', 'series_id', 'image_id', 'laterality', 'view_position', 'height', 'width',
            'breast_birads', 'breast_density', 'finding_categories', 'finding_birads',
            'xmin', 'ymin', 'xmax', 'ymax', 'split')
SPLITS = {'training': 'train', 'test': 'test'}
JOURNAL = '.journal.jsonl'
FORMAT_VERSION = 1  # bump when the image processing changes, so old journals are not reused


class ConversionError(ValueError):
    """Bad input; the message names the file, the row or the field."""


@dataclass
class Box:
    categories: List[str]
    birads: Optional[int]
    xyxy: tuple  # clipped to the original image
    line: int


@dataclass
class ImageRecord:
    study_id: str
    series_id: str
    image_id: str
    laterality: str
    view_position: str
    height: int
    width: int
    breast_birads: int
    breast_density: str
    split: str
    first_line: int
    boxes: List[Box] = field(default_factory=list)


@dataclass
class ConvertOptions:
    max_size: Optional[int] = 2048
    bit_depth: int = 8
    crop: bool = True
    voi: str = 'auto'
    window_index: int = 0
    val_fraction: float = 0.1
    seed: int = 0
    classes: Optional[Sequence[str]] = None
    workers: int = 0  # 0: all cores
    on_error: str = 'fail'
    progress: bool = True

    def fingerprint(self) -> dict:
        """The options that change the images; a journal is reused only when they match."""
        return dict(version=FORMAT_VERSION, max_size=self.max_size, bit_depth=self.bit_depth, crop=self.crop,
                    voi=self.voi, window_index=self.window_index)


def _fail_or_skip(msg: str, on_error: str, skipped: list) -> None:
    if on_error == 'fail':
        raise ConversionError(msg)
    skipped.append(msg)


def _parse_birads(text: str, allowed: Sequence[int], field_name: str) -> Optional[int]:
    text = text.strip()
    if not text:
        return None
    m = re.fullmatch(r'BI-RADS\s*([0-9])', text)
    if not m or int(m.group(1)) not in allowed:
        raise ValueError(f"{field_name} {text!r} is not one of {', '.join(f'BI-RADS {b}' for b in allowed)}")
    return int(m.group(1))


def _parse_row(row: dict) -> tuple:
    """(image fields, Box or None) of one CSV row; ValueError with the field name when a value is wrong."""
    for key in ('study_id', 'series_id', 'image_id'):
        if not ID_RE.match(row[key] or ''):
            raise ValueError(f'{key} {row[key]!r} is not a 32-character lowercase hex id')
    lat, view = row['laterality'].strip(), row['view_position'].strip()
    if lat not in LATERALITIES:
        raise ValueError(f'laterality {lat!r} is not one of {LATERALITIES}')
    if view not in VIEWS:
        raise ValueError(f'view_position {view!r} is not one of {VIEWS}')
    try:
        height, width = int(float(row['height'])), int(float(row['width']))
    except ValueError:
        raise ValueError(f"height/width {row['height']!r}/{row['width']!r} are not numbers") from None
    if height <= 0 or width <= 0:
        raise ValueError(f'height/width {height}/{width} must be positive')
    breast_birads = _parse_birads(row['breast_birads'], BREAST_BIRADS_VALUES, 'breast_birads')
    if breast_birads is None:
        raise ValueError('breast_birads is empty')
    dens = re.fullmatch(r'DENSITY\s*([A-Z])', row['breast_density'].strip())
    if not dens or dens.group(1) not in DENSITIES:
        raise ValueError(f"breast_density {row['breast_density']!r} is not DENSITY A..D")
    split = row['split'].strip()
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not 'training' or 'test'")
    try:
        cats = ast.literal_eval(row['finding_categories'].strip())  # the Python-list text of the release
    except (ValueError, SyntaxError):
        raise ValueError(f"finding_categories {row['finding_categories']!r} is not a list text") from None
    if isinstance(cats, str):
        cats = [cats]
    if not isinstance(cats, (list, tuple)) or not cats or not all(isinstance(c, str) for c in cats):
        raise ValueError(f"finding_categories {row['finding_categories']!r} is not a non-empty list of names")
    unknown = [c for c in cats if c not in FINDING_CATEGORIES and c != NO_FINDING]
    if unknown:
        raise ValueError(f'unknown finding categor{"y" if len(unknown) == 1 else "ies"} {unknown}')
    info = dict(study_id=row['study_id'], series_id=row['series_id'], image_id=row['image_id'],
                laterality=lat, view_position=view, height=height, width=width, breast_birads=breast_birads,
                breast_density=dens.group(1), split=split)
    coords = [row[k].strip() for k in ('xmin', 'ymin', 'xmax', 'ymax')]
    if NO_FINDING in cats:
        if len(cats) > 1:
            raise ValueError(f'finding_categories {cats} mixes No Finding with findings')
        if any(coords):
            raise ValueError('a No Finding row has box coordinates')
        return info, None
    try:
        x0, y0, x1, y1 = (float(c) for c in coords)
    except ValueError:
        raise ValueError(f'box {coords} has a missing or non-numeric coordinate') from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValueError(f'box {coords} is not finite')
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f'box {coords} is inverted or empty (xmax <= xmin or ymax <= ymin)')
    # Real boxes run up to ~27 px before and ~41 px past the edges: clip x to the width, y to the height.
    cx0, cx1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
    cy0, cy1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f'box {coords} lies outside the {width}x{height} image')
    birads = _parse_birads(row['finding_birads'], BIRADS_VALUES, 'finding_birads')
    return info, Box(list(dict.fromkeys(cats)), birads, (cx0, cy0, cx1, cy1), 0)


def read_findings(path: str, on_error: str = 'fail', skipped: Optional[list] = None) -> Dict[str, ImageRecord]:
    """Parses ``finding_annotations.csv`` into one record per image, validating every field.

    Raises:
        ConversionError: naming the file, the line and the field (``on_error='fail'``); with ``'skip'`` the
            row is left out and the message appended to ``skipped``.
    """
    skipped = [] if skipped is None else skipped
    images: Dict[str, ImageRecord] = {}
    try:
        fh = open(path, newline='', encoding='utf-8-sig')
    except OSError as exc:
        raise ConversionError(f'{path}: cannot open ({exc.strerror})') from None
    with fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ConversionError(f'{path}: missing column(s) {missing}; header is {reader.fieldnames}')
        for row in reader:
            line = reader.line_num
            where = f'{path} line {line}'
            if None in row or any(row[c] is None for c in REQUIRED):
                _fail_or_skip(f'{where}: wrong number of fields', on_error, skipped)
                continue
            try:
                info, box = _parse_row(row)
            except ValueError as exc:
                _fail_or_skip(f'{where}: {exc}', on_error, skipped)
                continue
            rec = images.get(info['image_id'])
            if rec is None:
                rec = images[info['image_id']] = ImageRecord(**info, first_line=line)
            else:
                clash = [k for k, v in info.items() if getattr(rec, k) != v]
                if clash:
                    _fail_or_skip(f'{where}: {clash} differ from line {rec.first_line} of the same image',
                                  on_error, skipped)
                    continue
            if box is not None:
                box.line = line
                rec.boxes.append(box)
    if not images:
        raise ConversionError(f'{path}: no usable rows')
    return images


def split_studies(images: Dict[str, ImageRecord], val_fraction: float, seed: int) -> Dict[str, str]:
    """image_id -> 'train' | 'val' | 'test'; val is stratified by study on breast BI-RADS and lesion labels."""
    labels: Dict[str, set] = {}
    for rec in images.values():
        if rec.split != 'training':
            continue
        s = labels.setdefault(rec.study_id, set())
        s.add(f'breast-birads-{rec.breast_birads}')
        for b in rec.boxes:
            for c in b.categories:
                s.add(f'{c}|{b.birads}')
    val = iterative_stratification(labels, val_fraction, seed) if val_fraction > 0 else set()
    return {i: ('test' if r.split == 'test' else 'val' if r.study_id in val else 'train')
            for i, r in images.items()}


def _record_key(rec: ImageRecord) -> str:
    """Changes when what the image's conversion depends on (size, boxes for the crop) changes."""
    text = json.dumps([rec.height, rec.width, [b.xyxy for b in rec.boxes]])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


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


def convert_image(task: tuple) -> dict:
    """Converts one DICOM to a PNG (worker function). Returns the record for the journal, or an error."""
    from mammo_det.io.dicom import DicomError, device, read_dicom
    from mammo_det.io.preprocess import preprocess_image

    rec_id, dicom_path, png_path, height, width, boxes, opts, key = task
    try:
        img = read_dicom(dicom_path)
        out, t, voi_desc = preprocess_image(img, boxes=boxes, expect_size=(width, height), **opts)
        write_png(png_path, out)
        manufacturer, model = device(img.header)
        return dict(image_id=rec_id, key=key, transform=t.to_dict(), voi=voi_desc, manufacturer=manufacturer,
                    manufacturer_model=model)
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


def coco_categories(classes: Sequence[str]) -> List[dict]:
    return [dict(id=i, name=c, supercategory='finding') for i, c in enumerate(classes, 1)]


def build_coco(records: List[ImageRecord], results: Dict[str, dict], classes: Sequence[str]) -> dict:
    """The COCO dict of one split: images in a stable order, ids from 1, one annotation per (box, label)."""
    from mammo_det.io.geometry import ImageTransform, to_converted

    cat_ids = {c: i for i, c in enumerate(classes, 1)}
    images, anns = [], []
    for rec in sorted(records, key=lambda r: (r.study_id, r.laterality, r.view_position, r.image_id)):
        res = results[rec.image_id]
        t = ImageTransform.from_dict(res['transform'])
        img_id = len(images) + 1
        images.append(dict(
            id=img_id, file_name=f'{rec.study_id}/{rec.image_id}.png', width=t.out_width, height=t.out_height,
            source_id=rec.image_id, study_id=rec.study_id, series_id=rec.series_id, laterality=rec.laterality,
            view_position=rec.view_position, breast_birads=rec.breast_birads, breast_density=rec.breast_density,
            orig_width=rec.width, orig_height=rec.height, transform=res['transform'], voi=res['voi'],
            manufacturer=res.get('manufacturer'), manufacturer_model=res.get('manufacturer_model')))
        for box in rec.boxes:
            x0, y0, x1, y1 = (float(v) for v in to_converted(np.array([box.xyxy]), t)[0])
            for cat in box.categories:
                if cat not in cat_ids:
                    continue
                w, h = x1 - x0, y1 - y0
                anns.append(dict(id=len(anns) + 1, image_id=img_id, category_id=cat_ids[cat],
                                 bbox=[round(x0, 3), round(y0, 3), round(w, 3), round(h, 3)],
                                 area=round(w * h, 3), iscrowd=0, birads=box.birads))
    return dict(info=dict(description='VinDr-Mammo converted by mammo-det', version=str(FORMAT_VERSION)),
                images=images, annotations=anns, categories=coco_categories(classes))


def _plan(root: str, out: str, images: Dict[str, ImageRecord], opts: ConvertOptions, done: Dict[str, dict]) -> tuple:
    """(results reused from an earlier run, worker tasks for the rest): an image is reused when the journal has
    it with the same record key and its PNG exists."""
    results: Dict[str, dict] = {}
    tasks = []
    popts = dict(voi=opts.voi, window_index=opts.window_index, bit_depth=opts.bit_depth, crop=opts.crop,
                 max_size=opts.max_size)
    for image_id in sorted(images):
        rec = images[image_id]
        key = _record_key(rec)
        png = os.path.join(out, 'images', rec.study_id, f'{image_id}.png')
        prev = done.get(image_id)
        if prev is not None and prev.get('key') == key and os.path.exists(png):
            if 'manufacturer' not in prev:  # journaled by a version that did not record the device
                prev = _with_device(prev, os.path.join(root, 'images', rec.study_id, f'{image_id}.dicom'))
            results[image_id] = prev
            continue
        tasks.append((image_id, os.path.join(root, 'images', rec.study_id, f'{image_id}.dicom'), png,
                      rec.height, rec.width, [b.xyxy for b in rec.boxes], popts, key))
    return results, tasks


def _with_device(prev: dict, dicom_path: str) -> dict:
    from mammo_det.io.dicom import DicomError, read_device

    try:
        manufacturer, model = read_device(dicom_path)
    except DicomError:
        manufacturer = model = None
    return dict(prev, manufacturer=manufacturer, manufacturer_model=model)


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
                    _fail_or_skip(res['error'], opts.on_error, skipped_files)
                    continue
                results[res['image_id']] = res
                journal.write(json.dumps(res) + '\n')
                journal.flush()
        finally:
            if pool is not None:
                pool.terminate()
            bar.close()
    return skipped_files


def _write_splits(out: str, images: Dict[str, ImageRecord], splits: Dict[str, str], results: Dict[str, dict],
                  classes: Sequence[str]) -> dict:
    """Writes instances_{train,val,test}.json; returns the per-split counts for the report."""
    counts = {}
    for split in ('train', 'val', 'test'):
        recs = [r for i, r in images.items() if splits[i] == split and i in results]
        coco = build_coco(recs, results, classes)
        write_json(os.path.join(out, 'annotations', f'instances_{split}.json'), coco)
        per_cat = {c: 0 for c in classes}
        for a in coco['annotations']:
            per_cat[classes[a['category_id'] - 1]] += 1
        positives = len({a['image_id'] for a in coco['annotations']})
        counts[split] = dict(images=len(coco['images']), studies=len({r.study_id for r in recs}),
                             positive_images=positives, negative_images=len(coco['images']) - positives,
                             annotations=len(coco['annotations']), per_category=per_cat)
    return counts


def convert(root: str, out: str, opts: Optional[ConvertOptions] = None) -> dict:
    """Converts a VinDr-Mammo release at ``root`` into COCO at ``out``; returns the report (also report.json).

    Raises:
        ConversionError: bad CSV row, unknown category, bad id, missing or corrupt DICOM (``on_error='fail'``).
    """
    opts = opts or ConvertOptions()
    if opts.on_error not in ('fail', 'skip'):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {opts.on_error!r}")
    if opts.bit_depth not in (8, 16):
        raise ValueError(f'bit_depth must be 8 or 16, got {opts.bit_depth}')
    classes = resolve_classes(opts.classes)
    start = time.time()
    skipped_rows: List[str] = []
    images = read_findings(os.path.join(root, 'finding_annotations.csv'), opts.on_error, skipped_rows)
    splits = split_studies(images, opts.val_fraction, opts.seed)

    os.makedirs(out, exist_ok=True)
    fingerprint = opts.fingerprint()
    journal_path = os.path.join(out, JOURNAL)
    done = _load_journal(journal_path, fingerprint)
    results, tasks = _plan(root, out, images, opts, done)
    if os.path.isdir(os.path.join(out, 'images')) and tasks:
        _remove_partial_pngs(os.path.join(out, 'images'))
    if not done:
        with open(journal_path, 'w') as fh:
            fh.write(json.dumps({'options': fingerprint}) + '\n')
    skipped_files = _run(tasks, len(images), journal_path, opts, results)

    report = dict(root=os.path.abspath(root), classes=classes, options=fingerprint, splits={},
                  skipped_rows=skipped_rows, skipped_files=skipped_files,
                  reused_images=len(images) - len(tasks), converted_images=len(tasks) - len(skipped_files))
    report['splits'] = _write_splits(out, images, splits, results, classes)
    report['seconds'] = round(time.time() - start, 2)
    write_json(os.path.join(out, 'report.json'), report)
    return report
