"""The COCO files of a conversion: one per split, images in a stable order, ids from 1, one annotation per
(box, category)."""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence


from mammo_det.fileio import write_json

from .boxes import place_box
from .records import Box, ImageRecord

FORMAT_VERSION = 1  # bump when the image processing changes, so old journals are not reused
SPLITS = ('train', 'val', 'test')


def coco_categories(classes: Sequence[str]) -> List[dict]:
    return [dict(id=i, name=c, supercategory='finding') for i, c in enumerate(classes, 1)]


def image_sort_key(im: dict) -> tuple:
    """The order of images in a split file (also how merge re-orders shards): study, side, view, id."""
    return (im['study_id'], im['laterality'], im['view_position'], im['source_id'])


def record_boxes(rec: ImageRecord, res: dict) -> List[Box]:
    """The record's boxes, then its pending boxes the worker located (those it could not are left out)."""
    return list(rec.boxes) + [spec.located(xyxy) for spec, xyxy in zip(rec.pending, res.get('located', []))
                              if xyxy is not None]


def build_coco(records: List[ImageRecord], results: Dict[str, dict], classes: Sequence[str], dataset: str,
               description: str, notes: Optional[Dict[str, list]] = None) -> dict:
    """The COCO dict of one split; ``notes['dropped']`` and ``notes['clipped']`` get what :func:`place_box` did."""
    from mammo_det.io.geometry import ImageTransform

    cat_ids = {c: i for i, c in enumerate(classes, 1)}
    images, anns = [], []
    entries = []
    for rec in records:
        res = results[rec.source_id]
        t = ImageTransform.from_dict(res['transform'])
        entries.append((dict(
            file_name=f'{rec.study_id}/{rec.source_id}.png', width=t.out_width, height=t.out_height, dataset=dataset,
            source_id=rec.source_id, study_id=rec.study_id, patient_id=rec.patient_id, laterality=rec.laterality,
            view_position=rec.view_position, **rec.fields, orig_width=t.orig_width, orig_height=t.orig_height,
            transform=res['transform'], voi=res['voi'], manufacturer=res.get('manufacturer'),
            manufacturer_model=res.get('manufacturer_model'), pixel_spacing=res.get('pixel_spacing'),
            pixel_spacing_source=res.get('pixel_spacing_source'), landmarks=res.get('landmarks')), rec, res, t))
    for im, rec, res, t in sorted(entries, key=lambda e: image_sort_key(e[0])):
        img_id = len(images) + 1
        images.append(dict(id=img_id, **im))
        for box in record_boxes(rec, res):
            placed, note = place_box(box, t, rec.source_id)
            if note and notes is not None:
                notes['dropped' if placed is None else 'clipped'].append(note)
            if placed is None:
                continue
            x0, y0, x1, y1 = placed
            for cat in box.categories:
                if cat not in cat_ids:
                    continue
                w, h = x1 - x0, y1 - y0
                anns.append(dict(id=len(anns) + 1, image_id=img_id, category_id=cat_ids[cat],
                                 bbox=[round(x0, 3), round(y0, 3), round(w, 3), round(h, 3)],
                                 area=round(w * h, 3), iscrowd=0, birads=box.birads, birads_raw=box.birads_raw,
                                 pathology=box.pathology, **box.extra))
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


def write_splits(out: str, records: Dict[str, ImageRecord], splits: Dict[str, str], results: Dict[str, dict],
                 classes: Sequence[str], dataset: str, description: str,
                 notes: Optional[Dict[str, list]] = None) -> dict:
    """Writes instances_{train,val,test}.json; returns the per-split counts for the report (``notes``: see
    :func:`build_coco`)."""
    counts = {}
    for split in SPLITS:
        recs = [r for k, r in records.items() if splits[k] == split and k in results]
        coco = build_coco(recs, results, classes, dataset, description, notes)
        write_json(os.path.join(out, 'annotations', f'instances_{split}.json'), coco)
        counts[split] = split_counts(coco, classes)
    return counts
