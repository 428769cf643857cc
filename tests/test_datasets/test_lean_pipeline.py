"""Lean samples: one channel at the stored bit depth through the CPU pipeline, the float RGB input made by the
model's data preprocessor; the model input equals the former float pipeline's to within 8-bit rounding."""
import os

import pytest
import torch
from mmcv.transforms import Compose

import mammo_det.registry  # noqa: F401
from mammo_det.datasets import MammoDataset

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]  # the configs' (mmdet's ImageNet) values


def _pipeline(float_rgb: bool, scale=(300, 300)):
    return Compose([dict(type='LoadMammogram', float_rgb=float_rgb), dict(type='LoadBiradsAnnotations', with_bbox=True),
                    dict(type='Resize', scale=scale, keep_ratio=True),
                    dict(type='RandomFlip', prob=1.0, direction='horizontal'), dict(type='PackMammoInputs')])


def _preprocessor(kind: str):
    from mmdet.registry import MODELS

    return MODELS.build(dict(type=kind, mean=MEAN, std=STD, bgr_to_rgb=True, pad_size_divisor=32))


@pytest.fixture(scope='module')
def sixteen_bit(synth_root, tmp_path_factory):
    from data_converters.core import ConvertOptions
    from data_converters.formats import convert

    root, _ = synth_root
    out = str(tmp_path_factory.mktemp('coco16'))
    convert(root, out, ConvertOptions(max_size=240, bit_depth=16, workers=1, progress=False, val_fraction=0.25))
    return out


@pytest.mark.parametrize('bits', [8, 16])
def test_model_input_equals_the_float_pipeline_within_8bit_rounding(bits, converted, sixteen_bit):
    from mmdet.utils import register_all_modules

    register_all_modules()
    data = converted[0] if bits == 8 else sixteen_bit
    ds = MammoDataset(data_root=data, ann_file='annotations/instances_train.json',
                           data_prefix=dict(img='images/'), pipeline=[])
    idx = next(i for i in range(len(ds)) if ds.get_data_info(i)['instances'])  # an image with boxes
    info = ds.get_data_info(idx)
    old, new = _pipeline(True)(dict(info)), _pipeline(False)(dict(info))
    dtype = torch.uint8 if bits == 8 else torch.uint16
    assert new['inputs'].dtype == dtype and new['inputs'].shape[0] == 1
    assert old['inputs'].dtype == torch.float32 and old['inputs'].shape[0] == 3
    # at most a quarter of the bytes (8-bit: 1/12, 16-bit: 1/6)
    assert new['inputs'].numel() * new['inputs'].element_size() * 4 <= old['inputs'].numel() * 4
    torch.testing.assert_close(new['data_samples'].gt_instances.bboxes.tensor,
                               old['data_samples'].gt_instances.bboxes.tensor)
    assert new['data_samples'].gt_instances.birads.tolist() == old['data_samples'].gt_instances.birads.tolist()
    assert new['data_samples'].metainfo['img_shape'] == old['data_samples'].metainfo['img_shape']
    x_old = _preprocessor('DetDataPreprocessor')(dict(inputs=[old['inputs']], data_samples=[old['data_samples']]))
    x_new = _preprocessor('MammoDataPreprocessor')(dict(inputs=[new['inputs']], data_samples=[new['data_samples']]))
    a, b = x_old['inputs'], x_new['inputs']
    assert a.shape == b.shape and a.dtype == b.dtype == torch.float32
    # One 8-bit level (the uint8 resize rounds where the float one did not) over the smallest std.
    tol = 1.0 / min(STD) + 1e-4
    diff = (a - b).abs()
    assert float(diff.max()) <= tol, float(diff.max())
    assert float(diff.mean()) < 0.35 * tol  # rounding to the nearest level: a quarter of a level on average
    assert float(a.std()) > 0.1  # a real image, not a blank one


def test_preprocessor_scales_16bit_and_repeats_the_channel():
    from mammo_det.models.data_preprocessor import to_float_rgb

    img16 = torch.tensor([[[0, 65535, 257]]], dtype=torch.uint16)
    out = to_float_rgb(img16)
    assert out.shape == (3, 1, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out[:, 0], torch.tensor([[0.0, 255.0, 1.0]] * 3))
    img8 = torch.tensor([[[0, 255, 7]]], dtype=torch.uint8)
    torch.testing.assert_close(to_float_rgb(img8)[2, 0], torch.tensor([0.0, 255.0, 7.0]))
    rgb = torch.rand(3, 2, 2)
    assert to_float_rgb(rgb) is rgb


def test_every_shipped_config_uses_the_lean_preprocessor_and_loader_settings():
    from mmengine.config import Config

    from mammo_det.apis.configs import list_configs, package_configs_dir

    for name in list_configs():
        cfg = Config.fromfile(os.path.join(package_configs_dir(), name))
        preprocessor = cfg.model.get('data_preprocessor') or {}
        if cfg.model.type == 'BiradsDetector':  # the wrapper's own default
            preprocessor = {'type': 'MammoDataPreprocessor', **preprocessor}
        assert preprocessor['type'] == 'MammoDataPreprocessor', name
        load = cfg.train_dataloader.dataset.pipeline[0]
        assert load['type'] == 'LoadMammogram' and not load.get('float_rgb', False), name
        if not name.startswith('demo'):  # the CPU demo loads in the main process on purpose
            loader = cfg.train_dataloader
            assert loader.num_workers >= 4 and loader.pin_memory and loader.persistent_workers, name
