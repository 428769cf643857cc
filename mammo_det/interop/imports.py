"""Predictions of other frameworks as this project's COCO results (``image_id``, ``category_id`` of the ground
truth, ``bbox`` xywh in the converted image's pixels, ``score``; ``birads_scores`` / ``birads`` where given).

Formats (``--pred-format``):

* ``yolo-txt``: ultralytics ``predict(save_txt=True, save_conf=True)``, a folder of ``<stem>.txt`` with one
  ``cls cx cy w h conf`` line per box, ``cls`` 0-based in our category order, the box normalised to the image.
  Images without detections have no file.
* ``yolo-json``: ultralytics ``val(save_json=True)``'s ``predictions.json``: ``image_id`` (the stem, an int when
  numeric), ``category_id`` = cls + 1 (ultralytics >= 8.3.48), ``bbox`` xywh in pixels, ``score``.
* ``coco``: COCO results (detectron2's ``coco_instances_results.json``, torchvision's, transformers'
  post-processing written out): ``category_ids`` says whether ids are the dataset's (default), or contiguous from
  0 or from 1 in our category order.
* ``csv``: one row per box with the columns ``image`` (file name, its stem, or image id), ``x1, y1, x2, y2``
  (pixels), ``score``, ``class`` (a category name, or its 0-based index in our order) and optionally
  ``birads_3, birads_4, birads_5`` (probabilities).

An image is named by its COCO image id (the stem of :mod:`.export`'s files), or by its converted file's stem
(``source_id``); a name that means two different images is an error. ``boxes='dicom'``: the boxes are on the
original DICOM grid and are mapped through each image's recorded transform. Boxes past the image are clipped and
counted; a box with nothing left is dropped and counted. Bad input stops with the file and line.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from mammo_det.errors import UserError
from mammo_det.fileio import read_json

from . import BOX_GRIDS, CATEGORY_IDS, PRED_FORMATS
BIRADS_COLUMNS = ('birads_3', 'birads_4', 'birads_5')


class PredictionImportError(UserError, ValueError):
    """A predictions file cannot be imported; the message names the file, the line and what is wrong."""


@dataclass
class ImportStats:
    detections: int = 0
    clipped: int = 0  # boxes past the image, clipped to it
    dropped: int = 0  # boxes with nothing inside the image
    images: int = 0  # images with at least one detection


@dataclass
class _Box:
    where: str  # file and line
    image: object  # the name of the image as the file gives it
    category: int  # our category id
    values: Tuple[float, float, float, float]  # as given
    kind: str  # 'xyxy', 'xywh' (pixels) or 'cxcywh-normalised'
    score: float
    birads: Optional[List[float]] = field(default=None)


class _Images:
    """The ground truth's images by id and by their file's stem."""

    def __init__(self, gt: dict, gt_path: str):
        self.path = gt_path
        self.by_id = {im['id']: im for im in gt['images']}
        self.by_stem: Dict[str, dict] = {}
        for im in gt['images']:
            for name in {os.path.splitext(os.path.basename(im['file_name']))[0], str(im.get('source_id', ''))}:
                if name:
                    self.by_stem[name] = im

    def find(self, name, where: str) -> dict:
        text = str(name).strip()
        stem = os.path.splitext(os.path.basename(text))[0]
        by_id = self.by_id.get(int(stem)) if stem.isdigit() else None
        by_stem = self.by_stem.get(stem)
        if by_id is not None and by_stem is not None and by_id is not by_stem:
            raise PredictionImportError(f'{where}: image {name!r} is both image id {by_id["id"]} and the file of image '
                                        f'{by_stem["id"]} in {self.path}: name it by one')
        image = by_id or by_stem
        if image is None:
            raise PredictionImportError(f'{where}: image {name!r} is not in the ground truth {self.path}')
        return image


def _number(text, what: str, where: str) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise PredictionImportError(f'{where}: {what} {text!r} is not a number') from None
    if not math.isfinite(v):
        raise PredictionImportError(f'{where}: {what} is {v}')
    return v


def _score(text, where: str) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise PredictionImportError(f'{where}: score {text!r} is not a number') from None
    if math.isnan(v) or v < 0:
        raise PredictionImportError(f'{where}: score {v} (scores are numbers >= 0)')
    return v


def _category(value, ids: Sequence[int], mode: str, where: str) -> int:
    """Our category id of a class given as ``mode``: 'dataset' ids, 'contiguous0' / 'contiguous1' indices."""
    try:
        v = int(value)
        if v != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise PredictionImportError(f'{where}: class {value!r} is not an integer') from None
    if mode == 'dataset':
        if v not in ids:
            raise PredictionImportError(f'{where}: category id {v} is not one of the ground truth\'s {list(ids)}')
        return v
    k = v - (1 if mode == 'contiguous1' else 0)
    if not 0 <= k < len(ids):
        lo = 1 if mode == 'contiguous1' else 0
        raise PredictionImportError(f'{where}: class {v} is out of range {lo}..{len(ids) - 1 + lo}')
    return ids[k]


def _yolo_txt(path: str, ids: Sequence[int]) -> Iterator[_Box]:
    files = sorted(f for f in os.listdir(path) if f.endswith('.txt')) if os.path.isdir(path) else []
    if not files and os.path.isdir(os.path.join(path, 'labels')):
        yield from _yolo_txt(os.path.join(path, 'labels'), ids)
        return
    if not files:
        raise PredictionImportError(f'{path}: no .txt files (ultralytics predict --save_txt writes labels/*.txt)')
    for name in files:
        with open(os.path.join(path, name)) as fh:
            for line_no, line in enumerate(fh, 1):
                tokens = line.split()
                if not tokens:
                    continue
                where = f'{os.path.join(path, name)} line {line_no}'
                if len(tokens) == 5:
                    raise PredictionImportError(f'{where}: 5 values and no confidence: predict with save_conf=True')
                if len(tokens) != 6:
                    raise PredictionImportError(f'{where}: {len(tokens)} values, expected cls cx cy w h conf')
                values = tuple(_number(t, 'coordinate', where) for t in tokens[1:5])
                if max(values) > 1.5:
                    raise PredictionImportError(f'{where}: coordinates {values} look like pixels; YOLO txt boxes are '
                                                'normalised to 0..1')
                yield _Box(where, os.path.splitext(name)[0], _category(tokens[0], ids, 'contiguous0', where), values,
                           'cxcywh-normalised', _score(tokens[5], where))


def _json_list(path: str) -> list:
    data = read_json(path, 'predictions', PredictionImportError)
    if not isinstance(data, list):
        raise PredictionImportError(f'{path}: not a list of detections')
    return data


def _json_boxes(path: str, ids: Sequence[int], mode: str) -> Iterator[_Box]:
    for k, d in enumerate(_json_list(path)):
        where = f'{path} entry {k}'
        if not isinstance(d, dict) or not {'image_id', 'category_id', 'bbox', 'score'} <= set(d):
            raise PredictionImportError(f'{where}: needs image_id, category_id, bbox and score')
        if not isinstance(d['bbox'], (list, tuple)) or len(d['bbox']) != 4:
            raise PredictionImportError(f'{where}: bbox {d["bbox"]!r} is not [x, y, w, h]')
        values = tuple(_number(v, 'bbox value', where) for v in d['bbox'])
        birads = d.get('birads_scores')
        yield _Box(where, d['image_id'], _category(d['category_id'], ids, mode, where), values, 'xywh',
                   _score(d['score'], where), [float(v) for v in birads] if birads else None)


def _csv_boxes(path: str, ids: Sequence[int], names: Sequence[str]) -> Iterator[_Box]:
    need = ('image', 'x1', 'y1', 'x2', 'y2', 'score', 'class')
    with open(path, newline='', encoding='utf-8-sig') as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in need if c not in header]
        if missing:
            raise PredictionImportError(f'{path}: missing column(s) {", ".join(missing)}; header is {header}')
        reader.fieldnames = header
        has_birads = all(c in header for c in BIRADS_COLUMNS)
        for row in reader:
            where = f'{path} line {reader.line_num}'
            if None in row or any(row[c] is None for c in need):
                raise PredictionImportError(f'{where}: the row has another number of fields than the header')
            cls = row['class'].strip()
            if cls in names:
                category = ids[list(names).index(cls)]
            else:
                category = _category(cls, ids, 'contiguous0', where) if cls.lstrip('-').isdigit() else None
                if category is None:
                    raise PredictionImportError(f'{where}: class {cls!r} is neither one of {list(names)} nor an index')
            values = tuple(_number(row[c], c, where) for c in ('x1', 'y1', 'x2', 'y2'))
            birads = [_number(row[c], c, where) for c in BIRADS_COLUMNS] if has_birads and row['birads_3'] else None
            yield _Box(where, row['image'], category, values, 'xyxy', _score(row['score'], where), birads)


def _check_export(pred_path: str, gt_path: str) -> None:
    """A predictions file inside (or beside) one of :mod:`.export`'s folders must come from this ground truth."""
    from .export import MANIFEST, file_sha256

    digest = file_sha256(gt_path)
    folder = os.path.abspath(pred_path if os.path.isdir(pred_path) else os.path.dirname(pred_path))
    for _ in range(4):
        manifest = os.path.join(folder, MANIFEST)
        if os.path.exists(manifest):
            prints = read_json(manifest, 'export manifest', PredictionImportError).get('fingerprint', {})
            if digest not in prints.values():
                raise PredictionImportError(f'{pred_path}: made on the export {os.path.dirname(manifest)}, whose data '
                                            f'is not {gt_path} (annotation files differ: {prints})')
            return
        folder = os.path.dirname(folder)


def _xyxy(box: _Box, image: dict, grid: str) -> tuple:
    # plain floats: a box at a time, numpy's per-call cost would be most of the import
    if box.kind == 'cxcywh-normalised':
        w, h = (image['orig_width'], image['orig_height']) if grid == 'dicom' else (image['width'], image['height'])
        cx, cy, bw, bh = box.values
        return ((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)
    if box.kind == 'xywh':
        x, y, bw, bh = box.values
        return (x, y, x + bw, y + bh)
    return tuple(box.values)


def _clip(b: tuple, width: float, height: float) -> tuple:
    return (min(max(b[0], 0.0), width), min(max(b[1], 0.0), height), min(max(b[2], 0.0), width),
            min(max(b[3], 0.0), height))


def import_predictions(gt_path: str, pred_path: str, fmt: str, boxes: str = 'converted',
                       category_ids: str = 'dataset') -> Tuple[List[dict], ImportStats]:
    """(COCO results of ``pred_path`` against the ground truth ``gt_path``, what the import did).

    Args:
        fmt: one of :data:`PRED_FORMATS`.
        boxes: 'converted' (the converted image's pixels) or 'dicom' (the original DICOM grid).
        category_ids: how a ``coco`` file gives its classes (:data:`CATEGORY_IDS`).

    Raises:
        PredictionImportError: the file and line of the first bad entry.
    """
    from mammo_det.io.geometry import ImageTransform, to_converted

    for value, allowed, what in ((fmt, PRED_FORMATS, '--pred-format'), (boxes, BOX_GRIDS, '--boxes'),
                                 (category_ids, CATEGORY_IDS, '--category-ids')):
        if value not in allowed:
            raise PredictionImportError(f'{what} {value!r}: one of {", ".join(allowed)}')
    if not os.path.exists(pred_path):
        raise PredictionImportError(f'{pred_path}: not found')
    gt = read_json(gt_path, 'ground truth', PredictionImportError)
    _check_export(pred_path, gt_path)
    cats = sorted(gt['categories'], key=lambda c: c['id'])
    ids, names = [c['id'] for c in cats], [c['name'] for c in cats]
    images = _Images(gt, gt_path)
    if fmt == 'yolo-txt':
        source = _yolo_txt(pred_path, ids)
    elif fmt == 'yolo-json':
        source = _json_boxes(pred_path, ids, 'contiguous1')
    elif fmt == 'coco':
        source = _json_boxes(pred_path, ids, category_ids)
    else:
        source = _csv_boxes(pred_path, ids, names)
    stats = ImportStats()
    out, seen, all_small = [], set(), True
    for box in source:
        image = images.find(box.image, box.where)
        xyxy = _xyxy(box, image, boxes)
        if box.kind != 'cxcywh-normalised' and max(abs(v) for v in xyxy) > 1.0:
            all_small = False
        if xyxy[2] < xyxy[0] or xyxy[3] < xyxy[1]:
            raise PredictionImportError(f'{box.where}: box {box.values} is inverted')
        if boxes == 'dicom':
            inside = _clip(xyxy, image['orig_width'], image['orig_height'])
            placed = to_converted(np.array([inside]), ImageTransform.from_dict(image['transform']))[0]
        else:
            inside = placed = _clip(xyxy, image['width'], image['height'])
        if placed[2] <= placed[0] or placed[3] <= placed[1]:
            stats.dropped += 1
            continue
        stats.clipped += int(inside != xyxy)
        det = dict(image_id=image['id'], category_id=box.category,
                   bbox=[round(float(placed[0]), 3), round(float(placed[1]), 3),
                         round(float(placed[2] - placed[0]), 3), round(float(placed[3] - placed[1]), 3)],
                   score=box.score)
        if box.birads is not None:
            if len(box.birads) != 3 or min(box.birads) < 0 or abs(sum(box.birads) - 1) > 1e-3:
                raise PredictionImportError(f'{box.where}: birads_scores {box.birads} are not 3 probabilities')
            det['birads_scores'] = box.birads
            det['birads'] = 3 + int(np.argmax(box.birads))
        out.append(det)
        seen.add(image['id'])
    if out and all_small and fmt != 'yolo-txt':
        raise PredictionImportError(f'{pred_path}: every box coordinate is within 0..1: the boxes look normalised, '
                                    'and this format takes pixels')
    stats.detections, stats.images = len(out), len(seen)
    return out, stats
