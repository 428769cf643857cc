"""Raw DICOMs (or PNGs) -> detections in the original DICOM pixel grid, with overlays."""
from __future__ import annotations

import os
from typing import Iterable, List, NamedTuple, Optional, Sequence

import numpy as np

from mammo_det.errors import UserError

INPUT_SUFFIXES = ('.dicom', '.dcm', '.png')


def find_inputs(paths: Iterable[str]) -> List[str]:
    """Files as given, folders searched recursively for .dicom/.dcm/.png, in a stable order."""
    found = []
    for p in paths:
        if os.path.isdir(p):
            for dirpath, _, names in os.walk(p):
                found += [os.path.join(dirpath, n) for n in names if n.lower().endswith(INPUT_SUFFIXES)]
        else:
            found.append(p)
    return sorted(dict.fromkeys(found))


def draw_detections(image: np.ndarray, boxes: np.ndarray, labels: Sequence[str], scores: Sequence[float],
                    birads: Optional[Sequence[int]] = None, color=(0, 0, 255), gt_boxes=None) -> np.ndarray:
    """BGR 8-bit overlay of xyxy ``boxes`` (image pixels) on a grayscale mammogram; ground truth in green."""
    import cv2

    img = image
    if img.dtype != np.uint8:
        img = (img.astype(np.float32) * (255.0 / max(float(img.max()), 1.0))).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    thick = max(1, round(max(img.shape[:2]) / 400))
    for b in (gt_boxes if gt_boxes is not None else []):
        x1, y1, x2, y2 = (int(round(v)) for v in b)
        cv2.rectangle(img, (x1, y1), (x2, y2), (0, 200, 0), thick)
    for k, b in enumerate(boxes):
        x1, y1, x2, y2 = (int(round(v)) for v in b)
        cv2.rectangle(img, (x1, y1), (x2, y2), color, thick)
        text = f'{labels[k]} {scores[k]:.2f}' + (f' BR{birads[k]}' if birads is not None else '')
        cv2.putText(img, text, (x1, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.3 * thick, color, 1, cv2.LINE_AA)
    return img


def load_model(config: str, checkpoint: str, device: Optional[str] = None):
    """The detector with its weights, in eval mode, and the test pipeline its config carries (which also reads
    raw DICOMs, with the converter's ``mammo_preprocess``, and records the crop/resize in ``mammo_transform``).

    The heads are built for the classes the checkpoint was trained on (a wrapped zoo model's count is set from
    them), else for the config's data. mmdet's ``init_detector`` is not used: it expects the model's backbone at
    ``model.backbone``, which a ``BiradsDetector`` holds inside its zoo model.
    """
    import torch
    from mmcv.transforms import Compose
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_state_dict

    from mammo_det.apis.runner import dataset_classes, set_model_classes
    from mammo_det.engine.checkpoint import allow_mmengine_checkpoints

    allow_mmengine_checkpoints()  # our checkpoints hold numpy scalars in their meta: torch's safe loader
    device = device or ('cuda:0' if torch.cuda.is_available() else 'cpu')
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=True)
    meta = (ckpt.get('meta') if isinstance(ckpt, dict) else None) or {}
    trained = (meta.get('dataset_meta') or {}).get('classes')
    set_model_classes(cfg, trained, f'{checkpoint} (the classes it was trained on)')
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = revert_sync_batchnorm(MODELS.build(cfg.model))  # built, not initialised: nothing is downloaded
    state = ckpt.get('state_dict', ckpt)
    load_state_dict(model, {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()})
    model.dataset_meta = dict(meta.get('dataset_meta') or {'classes': dataset_classes(cfg)[0]})
    model.cfg = cfg
    model.to(device).eval()
    init_default_scope('mmdet')
    return model, Compose(cfg.test_dataloader.dataset.pipeline)


class ThresholdError(UserError, ValueError):
    """The operating points asked for are not in the metrics file (the message says what is there)."""


def load_thresholds(metrics_path: str, fppi: float, classes: Sequence[str]) -> np.ndarray:
    """Per-class score thresholds of the operating point at ``fppi`` in a ``metrics.json`` of ``mammo-det evaluate``
    (or of ``mammo-det test --report-dir``); +inf for a class whose operating point keeps no box."""
    import json

    from mammo_det.evaluation.keys import fppi_key

    try:
        with open(metrics_path) as fh:
            ops = json.load(fh).get('operating_points')
    except (OSError, ValueError) as exc:
        raise ThresholdError(f'{metrics_path}: cannot read the operating points ({exc})') from None
    if not ops:
        raise ThresholdError(f'{metrics_path}: no operating_points (written by mammo-det evaluate from this version)')
    thr = []
    for c in classes:
        if c not in ops:
            raise ThresholdError(f'{metrics_path}: no operating point for the model class {c!r}')
        if fppi_key(fppi) not in ops[c]:
            raise ThresholdError(f'{metrics_path}: no operating point at {fppi:g} FPPI for {c!r} '
                                 f'(there are: {", ".join(ops[c])})')
        t = ops[c][fppi_key(fppi)]['threshold']
        thr.append(np.inf if t is None else float(t))
    return np.array(thr, np.float64)


def _dicom_context(path: str) -> dict:
    """Study, side, view and pixel spacing of an input from its DICOM header (empty for a PNG or a bad file): what
    two-view fusion needs beside the landmarks."""
    if not path.lower().endswith(('.dicom', '.dcm')):
        return {}
    import pydicom

    from mammo_det.io.dicom import pixel_spacing

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - an unreadable header only means no fusion for this input
        return {}
    spacing = pixel_spacing(ds)
    laterality = str(ds.get('ImageLaterality') or ds.get('Laterality') or '').strip() or None
    return dict(study_id=str(ds.get('StudyInstanceUID') or '') or None, laterality=laterality,
                view_position=str(ds.get('ViewPosition') or '').strip() or None,
                pixel_spacing=list(spacing[:2]) if spacing else None)


def _landmarks(image: np.ndarray, result, t, context: dict) -> dict:
    """The landmarks of the loaded (resized) image, in original pixels."""
    from mammo_det.io.geometry import points_to_original
    from mammo_det.io.landmarks import find_landmarks

    sx, sy = result.metainfo['scale_factor']
    lm = find_landmarks(image, context.get('view_position') or '', context.get('laterality'))
    return lm.mapped(lambda p: points_to_original(p / [sx, sy], t)).to_dict()


class Kept(NamedTuple):
    """The boxes an operating point keeps, in the network input's pixels."""
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    birads: Optional[np.ndarray]


def _record(path: str, result, classes: Sequence[str], score_thr: float,
            class_thr: Optional[np.ndarray] = None) -> tuple:
    """(prediction entry with boxes in the DICOM grid, the :class:`Kept` boxes, the image's transform).
    ``class_thr``: per-class thresholds (operating points) replacing ``score_thr``."""
    from mammo_det.io.geometry import ImageTransform, to_original

    inst = result.pred_instances
    if class_thr is None:
        keep = inst.scores >= score_thr
    else:
        scores64 = inst.scores.cpu().numpy().astype(np.float64)  # the float the evaluation saw
        keep = torch_bool(scores64 >= class_thr[inst.labels.cpu().numpy()], inst.scores.device)
    boxes = inst.bboxes[keep].cpu().numpy()
    scores = inst.scores[keep].cpu().numpy()
    labels = inst.labels[keep].cpu().numpy()
    has_birads = 'birads' in inst
    birads = inst.birads[keep].cpu().numpy() if has_birads else None
    probs = inst.birads_scores[keep].cpu().numpy() if has_birads else None
    meta = result.metainfo
    h, w = meta['ori_shape']
    t = ImageTransform.from_dict(meta['mammo_transform']) if 'mammo_transform' in meta else \
        ImageTransform.identity(w, h)
    orig = to_original(boxes, t)
    dets = []
    for k in range(len(scores)):
        d = dict(bbox=[round(float(v), 2) for v in orig[k]], category=classes[int(labels[k])],
                 score=round(float(scores[k]), 5))
        if has_birads:
            d['birads'] = int(birads[k])
            d['birads_scores'] = [round(float(v), 5) for v in probs[k]]
        dets.append(d)
    entry = dict(file=path, source_id=os.path.splitext(os.path.basename(path))[0], width=t.orig_width,
                 height=t.orig_height, overlay=None, **_dicom_context(path), detections=dets)
    return entry, Kept(boxes=boxes, scores=scores, labels=labels, birads=birads), t


def fuse_entries(predictions: List[dict], fuser: dict, classes: Sequence[str]) -> dict:
    """Rescores ``predictions`` (infer's entries, landmarks and boxes in DICOM pixels) with a fitted two-view fuser,
    in place; returns the fusion statistics."""
    from mammo_det.fusion import fuse_predictions

    cat = {c: k for k, c in enumerate(classes, 1)}
    images = [dict(id=k, file_name=p['file'], study_id=p.get('study_id'), laterality=p.get('laterality'),
                   view_position=p.get('view_position'), pixel_spacing=p.get('pixel_spacing'),
                   landmarks=p.get('landmarks')) for k, p in enumerate(predictions)]
    dets, where = [], []
    for k, p in enumerate(predictions):
        for j, d in enumerate(p['detections']):
            x0, y0, x1, y1 = d['bbox']
            dets.append(dict(image_id=k, category_id=cat[d['category']], bbox=[x0, y0, x1 - x0, y1 - y0],
                             score=d['score']))
            where.append((k, j))
    fused, stats = fuse_predictions(dict(images=images, annotations=[], categories=[]), dets, fuser)
    for (k, j), f in zip(where, fused):
        if 'score_single' in f:
            predictions[k]['detections'][j].update(score=round(f['score'], 5), score_single=f['score_single'],
                                                   fusion=f['fusion'])
    return stats


def _overlay_name(stem: str, taken: set, index: int) -> str:
    """Inputs from different folders may share a file name: never overwrite an earlier overlay."""
    name = f'{stem}.png' if f'{stem}.png' not in taken else f'{stem}_{index}.png'
    taken.add(name)
    return name


class _Inputs:
    """The files as a map-style dataset: item i is the config's test pipeline applied to file i, or the error that
    made the file unreadable (so a worker never dies on a bad file and the order of the outputs is kept)."""

    def __init__(self, files: Sequence[str], pipeline):
        self.files, self.pipeline = files, pipeline

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        from mammo_det.io import ImageError

        try:
            return dict(file=self.files[i], sample=self.pipeline(dict(img_path=self.files[i], img_id=i)))
        except (ImageError, FileNotFoundError, OSError) as exc:
            return dict(file=self.files[i], error=str(exc))


def input_loader(files: Sequence[str], pipeline, batch_size: int, workers: int):
    """Batches (lists) of ``_Inputs`` items, decoded and preprocessed in ``workers`` processes, in input order."""
    from torch.utils.data import DataLoader

    # Forked workers: cv2.setNumThreads() in a child forked after the parent used OpenCV's thread pool can hang, so
    # the workers keep OpenCV's defaults (torch already runs one thread in each).
    return DataLoader(_Inputs(files, pipeline), batch_size=batch_size, num_workers=workers, collate_fn=list,
                      shuffle=False)


def torch_bool(mask: np.ndarray, device):
    import torch

    return torch.as_tensor(mask, dtype=torch.bool, device=device)


def _write_overlay(path: str, img, res, kept: Kept, classes: Sequence[str]) -> None:
    """The kept boxes drawn on the loaded (resized) image, written to ``path``."""
    import cv2

    from mammo_det.fileio import atomic_path

    sx, sy = res.metainfo['scale_factor']
    overlay = draw_detections(img, kept.boxes * [sx, sy, sx, sy], [classes[int(c)] for c in kept.labels], kept.scores,
                              kept.birads)
    with atomic_path(path) as tmp:
        cv2.imwrite(tmp, overlay)


def infer(config: str, checkpoint: str, inputs: Sequence[str], out_dir: str, device: Optional[str] = None,
          batch_size: int = 4, score_thr: float = 0.05, workers: int = 2, progress: bool = True,
          thresholds: Optional[str] = None, fppi: Optional[float] = None, fuser: Optional[str] = None) -> dict:
    """Runs a trained detector on DICOMs/PNGs; writes ``predictions.json`` and one overlay PNG per input.

    DICOMs get the converter's preprocessing (the config's test pipeline carries it), and boxes are mapped back to
    the DICOM grid (W x H = Columns x Rows). PNGs are taken as converted images and their boxes stay in PNG pixels.
    BI-RADS is the model's own prediction. Decoding and preprocessing run in ``workers`` processes (0: in this
    one) while the model works; outputs keep the order of the inputs, and unreadable files are listed and skipped.
    ``thresholds`` (a metrics.json) with ``fppi``: keep each class's boxes at its operating point at that FPPI
    (score >= its threshold) instead of ``score_thr``. Every entry carries the image's landmarks (DICOM pixels) and,
    from a DICOM header, its study, side, view and pixel spacing; ``fuser`` (from ``mammo-det fuse --fit``) rescores
    the detections of breasts whose CC and MLO views are among the inputs.

    Returns:
        dict(predictions=[...], errors=[...]) as written to ``out_dir``.
    """
    import torch
    from mmengine.dataset import pseudo_collate
    from tqdm import tqdm

    from mammo_det.fileio import write_json

    model, pipeline = load_model(config, checkpoint, device)
    classes = model.dataset_meta['classes']
    class_thr = None
    if thresholds is not None:
        from mammo_det.evaluation.keys import HEADLINE_FPPI

        class_thr = load_thresholds(thresholds, HEADLINE_FPPI if fppi is None else fppi, classes)
    files = find_inputs(inputs)
    os.makedirs(out_dir, exist_ok=True)
    loader = input_loader(files, pipeline, batch_size, workers)
    predictions, errors, overlays = [], [], set()
    with tqdm(total=len(files), desc='infer', unit='img', disable=not progress) as bar:
        for items in loader:
            bar.update(len(items))
            errors += [dict(file=it['file'], error=it['error']) for it in items if 'error' in it]
            items = [it for it in items if 'sample' in it]
            if not items:
                continue
            with torch.no_grad():
                results = model.test_step(pseudo_collate([it['sample'] for it in items]))
            for it, res in zip(items, results):
                entry, kept, t = _record(it['file'], res, classes, score_thr, class_thr)
                entry['overlay'] = _overlay_name(entry['source_id'], overlays, len(predictions))
                img = it['sample']['inputs'][0].numpy()  # the loaded (resized) image, one channel
                entry['landmarks'] = _landmarks(img, res, t, entry)
                _write_overlay(os.path.join(out_dir, entry['overlay']), img, res, kept, classes)
                predictions.append(entry)
    fusion = None
    if fuser is not None:
        from mammo_det.fusion import load_fuser

        fusion = fuse_entries(predictions, load_fuser(fuser), classes)
    write_json(os.path.join(out_dir, 'predictions.json'), predictions, indent=1)
    if errors:
        write_json(os.path.join(out_dir, 'errors.json'), errors, indent=1)
    return dict(predictions=predictions, errors=errors, fusion=fusion)
