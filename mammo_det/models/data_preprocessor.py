"""The model's data preprocessor for lean mammogram samples: float, 0-255, three channels, made on the device."""
from __future__ import annotations

import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.registry import MODELS

SCALE_16_TO_8 = 255.0 / 65535.0


def to_float_rgb(img: torch.Tensor) -> torch.Tensor:
    """C x H x W uint8 (0-255) or uint16 (0-65535) -> float32 3 x H x W in [0, 255]; float input passes through."""
    if img.dtype == torch.uint8:
        img = img.float()
    elif img.dtype in (torch.uint16, torch.int32):  # uint16 PNGs; int32 where a tensor library lacks uint16
        img = img.float() * SCALE_16_TO_8
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return img


@MODELS.register_module()
class MammoDataPreprocessor(DetDataPreprocessor):
    """DetDataPreprocessor that takes the loaders' one-channel uint8/uint16 images as they are.

    The images travel to the device at 1 or 2 bytes a pixel; there 16-bit values are scaled to 0-255 (the range the
    ImageNet mean/std expect), the channel is repeated for the three-channel backbones, and the parent normalises,
    pads and batches as before. Float three-channel inputs (``LoadMammogram(float_rgb=True)``) are unchanged.
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)  # to the device first, still 1 or 2 bytes a pixel
        data['inputs'] = [to_float_rgb(img) for img in data['inputs']]
        return super().forward(data, training)
