"""``mammo-det birads apply``: the BI-RADS of every box of a predictions file, from a trained
:class:`~mammo_det.models.BiradsClassifier`, so that boxes from any framework carry ``birads_scores`` / ``birads``
as the project's own detectors' do."""
from __future__ import annotations

import os
from typing import List, Optional

from mammo_det.errors import UserError


class BiradsApplyError(UserError, ValueError):
    """The predictions cannot be classified as asked; the message names the file."""


def apply_birads(config: str, checkpoint: str, predictions: str, data_root: str, split: str = 'test',
                 device: Optional[str] = None, batch_size: int = 4) -> List[dict]:
    """The detections of ``predictions`` (COCO results on ``data_root``'s ``split``) with ``birads_scores`` and
    ``birads`` from the classifier, pooled in each box on its converted image; any BI-RADS they carried is
    replaced. The detections keep their order."""
    import numpy as np
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.structures import InstanceData

    from mammo_det.apis.inference import load_model
    from mammo_det.evaluation import load_json, validate_detections

    gt_path = os.path.join(data_root, 'annotations', f'instances_{split}.json')
    gt = load_json(gt_path, 'ground truth')
    dets = validate_detections(load_json(predictions, 'predictions'), gt, predictions)
    model, pipeline = load_model(config, checkpoint, device)
    if type(model).__name__ != 'BiradsClassifier':
        raise BiradsApplyError(f'{config}: the model is a {type(model).__name__}, not a BiradsClassifier')
    images = {im['id']: im for im in gt['images']}
    by_image = {}
    for k, d in enumerate(dets):
        by_image.setdefault(d['image_id'], []).append(k)
    out = [dict(d) for d in dets]
    ids = sorted(by_image)
    for start in range(0, len(ids), batch_size):
        batch = []
        for image_id in ids[start:start + batch_size]:
            im = images[image_id]
            sample = pipeline(dict(img_path=os.path.join(data_root, 'images', im['file_name']), img_id=image_id,
                                   instances=[]))
            xywh = np.array([dets[k]['bbox'] for k in by_image[image_id]], np.float32).reshape(-1, 4)
            sample['data_samples'].proposals = InstanceData(
                bboxes=torch.from_numpy(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)))
            batch.append(sample)
        with torch.no_grad():
            results = model.test_step(pseudo_collate(batch))
        for image_id, res in zip(ids[start:start + batch_size], results):
            probs = res.pred_instances.birads_scores.cpu().numpy()
            for k, p in zip(by_image[image_id], probs):
                out[k]['birads_scores'] = [round(float(v), 5) for v in p]
                out[k]['birads'] = 3 + int(np.argmax(p))
    return out
