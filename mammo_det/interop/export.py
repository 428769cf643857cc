"""The converted data in other frameworks' layouts, every image linked (not copied) to the converted PNG.

* ``yolo`` (ultralytics): ``images/{train,val,test}/<id>.png``, ``labels/{split}/<id>.txt`` with one
  ``class cx cy w h`` line per (box, label), the class 0-based in our category order and the box normalised to
  the image; an empty label file for every image without a box, so negatives stay in the false-positive count;
  ``data.yaml`` with an absolute ``path`` (ultralytics resolves a relative one under its own datasets folder) and
  the names in our order, and no ``download`` key.
* ``rfdetr`` (RF-DETR): ``{train,valid,test}/_annotations.coco.json`` with the images beside each file, the COCO
  files as converted (category ids 1..N, each with a supercategory) but for the flat file names.

The stem of every exported image is its COCO image id in its split, which is what ultralytics reports as
``image_id`` for a numeric stem, so predictions map back to one image without ambiguity. ``export.json`` records
the format and the data's fingerprint (each annotation file's SHA-256), which :mod:`.imports` checks.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Dict, List

from mammo_det.errors import UserError
from mammo_det.fileio import read_json, write_json, write_text

from . import EXPORT_FORMATS as FORMATS

SPLITS = ('train', 'val', 'test')
RFDETR_SPLITS = {'train': 'train', 'val': 'valid', 'test': 'test'}
MANIFEST = 'export.json'


class ExportError(UserError, ValueError):
    """The data cannot be exported as asked; the message names the file or folder."""


def annotation_path(data: str, split: str) -> str:
    return os.path.join(data, 'annotations', f'instances_{split}.json')


def file_sha256(path: str) -> str:
    with open(path, 'rb') as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def fingerprint(data: str) -> Dict[str, str]:
    """SHA-256 of each split's annotation file: what a set of predictions was scored against."""
    return {split: file_sha256(annotation_path(data, split)) for split in SPLITS
            if os.path.exists(annotation_path(data, split))}


def _categories(coco: dict) -> List[dict]:
    return sorted(coco['categories'], key=lambda c: c['id'])


def _yolo_lines(coco: dict, image: dict, order: Dict[int, int]) -> List[str]:
    w, h = float(image['width']), float(image['height'])
    lines = []
    for a in coco['_by_image'].get(image['id'], []):
        x, y, bw, bh = (float(v) for v in a['bbox'])
        lines.append(f"{order[a['category_id']]} {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} {bw / w:.6f} "
                     f"{bh / h:.6f}")
    return lines


def _link(src: str, dst: str) -> None:
    if not os.path.exists(src):
        raise ExportError(f'{src}: the converted image is missing')
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    os.symlink(os.path.abspath(src), dst)


def _yaml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a YAML string


def _write_yolo(data: str, out: str, cocos: Dict[str, dict], final: str) -> None:
    cats = _categories(next(iter(cocos.values())))
    order = {c['id']: k for k, c in enumerate(cats)}
    for split, coco in cocos.items():
        os.makedirs(os.path.join(out, 'labels', split), exist_ok=True)
        for image in coco['images']:
            _link(os.path.join(data, 'images', image['file_name']),
                  os.path.join(out, 'images', split, f"{image['id']}.png"))
            lines = _yolo_lines(coco, image, order)
            write_text(os.path.join(out, 'labels', split, f"{image['id']}.txt"), ''.join(f'{ln}\n' for ln in lines))
    yaml = [f'path: {_yaml_str(os.path.abspath(final))}  # absolute: ultralytics resolves a relative one elsewhere']
    yaml += [f'{split}: {_yaml_str(f"images/{split}")}' for split in cocos]
    yaml += ['names:'] + [f'  {k}: {_yaml_str(c["name"])}' for k, c in enumerate(cats)]
    write_text(os.path.join(out, 'data.yaml'), '\n'.join(yaml) + '\n')


def _write_rfdetr(data: str, out: str, cocos: Dict[str, dict], final: str) -> None:
    for split, coco in cocos.items():
        folder = os.path.join(out, RFDETR_SPLITS[split])
        images = []
        for image in coco['images']:
            name = f"{image['id']}.png"
            _link(os.path.join(data, 'images', image['file_name']), os.path.join(folder, name))
            images.append(dict(image, file_name=name))
        cats = [dict(c, supercategory=c.get('supercategory') or 'finding') for c in _categories(coco)]
        body = {k: v for k, v in coco.items() if not k.startswith('_')}
        write_json(os.path.join(folder, '_annotations.coco.json'), dict(body, images=images, categories=cats))


def export(data: str, fmt: str, out: str) -> dict:
    """Writes the converted dataset at ``data`` in layout ``fmt`` to ``out`` (a new folder: written under a
    temporary name, then renamed, so nothing is half-written); returns the manifest (also ``out/export.json``).

    Raises:
        ExportError: an unknown format, ``out`` exists, no annotation file, a missing image.
    """
    if fmt not in FORMATS:
        raise ExportError(f'unknown export format {fmt!r}; one of {", ".join(FORMATS)}')
    if os.path.exists(out):
        raise ExportError(f'{out}: exists; give a new folder')
    cocos = {}
    for split in SPLITS:
        path = annotation_path(data, split)
        if os.path.exists(path):
            coco = read_json(path, 'annotation file', ExportError)
            by_image: Dict[int, list] = {}
            for a in coco['annotations']:
                by_image.setdefault(a['image_id'], []).append(a)
            cocos[split] = dict(coco, _by_image=by_image)
    if not cocos:
        raise ExportError(f'{data}: no annotations/instances_{{train,val,test}}.json (the output of mammo-det convert)')
    names = {split: [c['name'] for c in _categories(c)] for split, c in cocos.items()}
    if len({tuple(v) for v in names.values()}) > 1:
        raise ExportError(f'{data}: the splits have different categories ({names})')
    tmp = f'{os.path.abspath(out).rstrip(os.sep)}.partial{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (_write_yolo if fmt == 'yolo' else _write_rfdetr)(data, tmp, cocos, out)
        manifest = dict(format=fmt, data=os.path.abspath(data), fingerprint=fingerprint(data),
                        categories=_categories(next(iter(cocos.values()))),
                        images={split: len(c['images']) for split, c in cocos.items()},
                        boxes={split: len(c['annotations']) for split, c in cocos.items()})
        write_json(os.path.join(tmp, MANIFEST), manifest, indent=1)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
