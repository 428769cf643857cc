"""Loading mammograms (8/16-bit PNG or DICOM) and BI-RADS labels: thin wrappers over ``mammo_det.io``."""
from __future__ import annotations

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import LoadAnnotations, PackDetInputs
from mmdet.registry import TRANSFORMS

DICOM_SUFFIXES = ('.dicom', '.dcm')


@TRANSFORMS.register_module()
class LoadMammogram(BaseTransform):
    """Loads a grayscale mammogram as it is stored: HxW uint8 or uint16 (an 8- or 16-bit PNG, or a DICOM).

    mmcv's ``LoadImageFromFile(color_type='color')`` silently turns a 16-bit PNG into 8 bits and makes three
    channels on the CPU; here the image stays one channel at its own bit depth through the CPU pipeline (resize,
    flip, pack: 1 or 2 bytes a pixel through the loaders' shared memory and to the GPU, where a float32 RGB image
    takes 12), and :class:`mammo_det.models.MammoDataPreprocessor` makes the float, 0-255, three-channel input on
    the device. A ``.dicom``/``.dcm`` path is preprocessed like the converter does (breast crop, resize, window),
    and the transform to the DICOM grid is kept for mapping boxes back.

    Required keys: ``img_path``. Added keys: ``img``, ``img_shape``, ``ori_shape``, and for DICOMs
    ``mammo_transform`` (a dict, see :class:`mammo_det.io.geometry.ImageTransform`).

    Args:
        dicom_cfg: keyword arguments of :func:`mammo_det.io.preprocess.preprocess` for DICOM inputs.
        float_rgb: the former output instead, float32 HxWx3 in [0, 255] (16-bit scaled down), for models whose
            data preprocessor is mmdet's plain ``DetDataPreprocessor``.
    """

    def __init__(self, dicom_cfg: dict = None, float_rgb: bool = False):
        self.dicom_cfg = dict(dicom_cfg or {})
        self.float_rgb = float_rgb

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        if path.lower().endswith(DICOM_SUFFIXES):
            from mammo_det.io.preprocess import preprocess

            img, t, _ = preprocess(path, **self.dicom_cfg)
            results['mammo_transform'] = t.to_dict()
        else:
            img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            if img is None:
                raise FileNotFoundError(f'{path}: cannot read the image (missing or not an image)')
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.shape[2] == 3 else img[..., 0]
        if self.float_rgb:
            scale = 255.0 / 65535.0 if img.dtype == np.uint16 else 1.0
            img = np.repeat((img.astype(np.float32) * scale)[..., None], 3, axis=2)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class LoadBiradsAnnotations(LoadAnnotations):
    """LoadAnnotations plus ``gt_birads`` (int64, 3/4/5, -1 when the box has none), aligned with the boxes.

    Added keys: ``gt_birads``. Transforms that drop boxes (crops, FilterAnnotations) do not know this key;
    the configs use none of them.
    """

    def _load_labels(self, results: dict) -> None:
        super()._load_labels(results)
        results['gt_birads'] = np.array([inst.get('birads', -1) for inst in results.get('instances', [])],
                                        dtype=np.int64)


@TRANSFORMS.register_module()
class PackMammoInputs(PackDetInputs):
    """PackDetInputs that also packs ``gt_birads`` into ``gt_instances.birads``."""

    mapping_table = {**PackDetInputs.mapping_table, 'gt_birads': 'birads'}
