"""Random evaluation cases shaped like a converted release: studies of four views with the image fields the
converter writes, boxes with BI-RADS, detections with BI-RADS probabilities."""
import contextlib
import io
import json

import numpy as np

VENDORS = ('SIEMENS', 'Planmed', 'IMS s.r.l.')


def study_case(seed: int, studies: int = 30, cats: int = 3, fp_per_image: float = 3.0, skill: float = 1.0):
    """(gt, dets). ``skill`` scales how much higher true positives score than false positives."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for s in range(studies):
        density, vendor = 'ABCD'[int(rng.integers(4))], VENDORS[int(rng.integers(3))]
        for lat in 'LR':
            breast_birads = int(rng.choice([1, 2, 3, 4, 5], p=[0.4, 0.2, 0.15, 0.15, 0.1]))
            for view in ('CC', 'MLO'):
                images.append(dict(id=len(images) + 1, file_name=f's{s}/{lat}{view}.png', width=200, height=240,
                                   study_id=f'study{s:03d}', laterality=lat, view_position=view,
                                   breast_density=density, manufacturer=vendor, breast_birads=breast_birads))
                for _ in range(int(rng.poisson(0.8 if breast_birads >= 3 else 0.1))):
                    w, h = rng.uniform(8, 50, 2)
                    x, y = rng.uniform(0, 200 - w), rng.uniform(0, 240 - h)
                    anns.append(dict(id=len(anns) + 1, image_id=len(images), category_id=int(rng.integers(1, cats + 1)),
                                     bbox=[float(x), float(y), float(w), float(h)], area=float(w * h), iscrowd=0,
                                     birads=int(rng.choice([3, 4, 5]))))
    dets = []
    for a in anns:
        for _ in range(int(rng.integers(0, 3))):  # jittered hits, sometimes a duplicate, sometimes missed
            b = np.array(a['bbox']) + rng.normal(0, 2.5, 4)
            b[2:] = np.maximum(b[2:], 2)
            dets.append(dict(image_id=a['image_id'], category_id=a['category_id'], bbox=b.tolist(),
                             score=float(np.clip(rng.normal(0.5 + 0.3 * skill, 0.2), 0.001, 1)),
                             birads_scores=rng.dirichlet([1, 1, 1]).tolist()))
    for _ in range(int(len(images) * fp_per_image)):
        im = int(rng.integers(1, len(images) + 1))
        w, h = rng.uniform(6, 50, 2)
        dets.append(dict(image_id=im, category_id=int(rng.integers(1, cats + 1)),
                         bbox=[float(rng.uniform(0, 190)), float(rng.uniform(0, 230)), float(w), float(h)],
                         score=float(np.clip(rng.normal(0.4, 0.2), 0.001, 1)),
                         birads_scores=rng.dirichlet([1, 1, 1]).tolist()))
    gt = dict(images=images, annotations=anns, categories=[dict(id=c, name=f'c{c}') for c in range(1, cats + 1)])
    return gt, dets


def pycocotools_ap(gt: dict, dets: list, iou_thrs=None) -> dict:
    """Per-category AP straight from pycocotools (area 'all', maxDets 100; mean over the given thresholds)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        c = COCO()
        c.dataset = json.loads(json.dumps(gt))
        c.createIndex()
        e = COCOeval(c, c.loadRes(json.loads(json.dumps(dets))), 'bbox')
        if iou_thrs is not None:
            e.params.iouThrs = np.array(iou_thrs, dtype=np.float64)
        e.params.areaRng, e.params.areaRngLbl, e.params.maxDets = [[0, 1e10]], ['all'], [100]
        e.evaluate()
        e.accumulate()
    names = {c['id']: c['name'] for c in gt['categories']}
    out = {}
    for k, cid in enumerate(e.params.catIds):
        p = e.eval['precision'][:, :, k, 0, 0]
        out[names[cid]] = float(p[p > -1].mean()) if (p > -1).any() else None
    return out


def duplicate(gt: dict, dets: list, copies) -> tuple:
    """The data with study ``u`` present ``copies[u]`` times (as new studies), units in sorted study order."""
    studies = sorted({im['study_id'] for im in gt['images']})
    times = dict(zip(studies, (int(c) for c in copies)))
    images, anns, out_dets, new_id = [], [], [], {}
    for im in gt['images']:
        for k in range(times[im['study_id']]):
            new_id[(im['id'], k)] = len(images) + 1
            images.append(dict(im, id=len(images) + 1, study_id=f"{im['study_id']}#{k}"))
    study_of = {im['id']: im['study_id'] for im in gt['images']}
    for a in gt['annotations']:
        for k in range(times[study_of[a['image_id']]]):
            anns.append(dict(a, id=len(anns) + 1, image_id=new_id[(a['image_id'], k)]))
    for d in dets:
        for k in range(times[study_of[d['image_id']]]):
            out_dets.append(dict(d, image_id=new_id[(d['image_id'], k)]))
    return dict(gt, images=images, annotations=anns), out_dets
