import json
import os

import numpy as np
import torch

from mammo_det.datasets import PositiveNegativeSampler, MammoDataset


def _dataset(data, **kw):
    return MammoDataset(data_root=data, ann_file='annotations/instances_train.json',
                        data_prefix=dict(img='images/'), pipeline=[], **kw)


def test_birads_negatives_and_image_fields(converted):
    data, _ = converted
    ds = _dataset(data)
    coco = json.load(open(os.path.join(data, 'annotations/instances_train.json')))
    assert len(ds) == len(coco['images'])  # negatives kept
    assert ds.metainfo['classes'][0] == 'Mass' and len(ds.metainfo['classes']) == 10
    # per box: each image's instances in the order of its annotations, each with its own BI-RADS
    by_image = {}
    for a in coco['annotations']:
        x, y, w, h = a['bbox']
        birads = -1 if a['birads'] is None else a['birads']
        by_image.setdefault(a['image_id'], []).append(([x, y, x + w, y + h], birads))
    got = {ds.get_data_info(i)['img_id']: [(inst['bbox'], inst['birads']) for inst in ds.get_data_info(i)['instances']]
           for i in range(len(ds))}
    assert {k: v for k, v in got.items() if v} == by_image
    assert len({b for v in by_image.values() for _, b in v}) > 1  # the check tells BI-RADS apart
    info = ds.get_data_info(0)
    for key in ('study_id', 'laterality', 'view_position', 'breast_birads', 'breast_density', 'transform'):
        assert key in info


def test_subset_metainfo_follows_classes(converted):
    data, _ = converted
    ds = _dataset(data, metainfo=dict(classes=('Mass',)))
    labels = [inst['bbox_label'] for i in range(len(ds)) for inst in ds.get_data_info(i)['instances']]
    coco = json.load(open(os.path.join(data, 'annotations', 'instances_train.json')))
    mass_id = next(c['id'] for c in coco['categories'] if c['name'] == 'Mass')
    masses = sum(a['category_id'] == mass_id for a in coco['annotations'])
    assert masses > 0 and labels == [0] * masses  # every Mass box kept as label 0, every other finding left out
    assert ds.metainfo['classes'] == ('Mass',)


def test_pipeline_loads_and_packs_birads(converted):
    from mmdet.utils import register_all_modules
    register_all_modules()  # default scope mmdet, as in a runner
    data, _ = converted
    ds = MammoDataset(data_root=data, ann_file='annotations/instances_train.json',
                           data_prefix=dict(img='images/'),
                           pipeline=[dict(type='LoadMammogram'), dict(type='LoadBiradsAnnotations', with_bbox=True),
                                     dict(type='PackMammoInputs')])
    idx = next(i for i in range(len(ds)) if ds.get_data_info(i)['instances'])
    out = ds[idx]
    gt = out['data_samples'].gt_instances
    expected = [inst['birads'] for inst in ds.get_data_info(idx)['instances']]
    assert gt.birads.tolist() == expected
    assert out['inputs'].shape[0] == 1 and out['inputs'].dtype == torch.uint8  # lean: one 8-bit channel


def test_sixteen_bit_png_keeps_precision(tmp_path):
    import cv2
    from mammo_det.datasets.transforms import LoadMammogram
    img = np.array([[0, 1, 257, 65535]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / 'a.png'), img)
    lean = LoadMammogram().transform(dict(img_path=str(tmp_path / 'a.png')))['img']
    assert lean.dtype == np.uint16 and lean.shape == (1, 4)
    np.testing.assert_array_equal(lean, img)  # every 16-bit value kept: an 8-bit load would merge 0 and 1
    out = LoadMammogram(float_rgb=True).transform(dict(img_path=str(tmp_path / 'a.png')))['img']
    assert out.dtype == np.float32 and out.shape == (1, 4, 3)
    np.testing.assert_allclose(out[0, :, 0], img[0].astype(np.float64) * 255 / 65535, rtol=1e-6)
    assert out[0, 1, 0] != out[0, 0, 0]


def test_sampler_takes_all_positives_and_a_share_of_negatives(converted):
    data, _ = converted
    ds = _dataset(data)
    s = PositiveNegativeSampler(ds, neg_fraction=0.5, seed=0)
    pos = {i for i in range(len(ds)) if ds.get_data_info(i)['instances']}
    neg = set(range(len(ds))) - pos
    e0 = list(s)
    assert len(e0) == len(s) == len(pos) + round(0.5 * len(neg))
    assert pos <= set(e0) and len(set(e0) & neg) == round(0.5 * len(neg))
    s.set_epoch(1)
    assert set(s) & neg != set(e0) & neg  # a fresh draw of negatives each epoch


def test_equal_boxes_with_different_birads_keep_their_own(tmp_path):
    """Two annotations of one box (a finding read twice, or two findings drawn alike) keep their BI-RADS, in the
    annotation order; an annotation the parent skips (under a pixel wide) does not shift them."""
    ann = dict(images=[dict(id=1, file_name='a.png', width=100, height=100)],
               categories=[dict(id=1, name='Mass'), dict(id=2, name='Suspicious Calcification')],
               annotations=[dict(id=1, image_id=1, category_id=1, bbox=[10, 10, 20, 20], area=400, iscrowd=0, birads=5),
                            dict(id=2, image_id=1, category_id=2, bbox=[5, 5, 0.5, 9], area=4.5, iscrowd=0, birads=3),
                            dict(id=3, image_id=1, category_id=1, bbox=[10, 10, 20, 20], area=400, iscrowd=0, birads=4),
                            dict(id=4, image_id=1, category_id=2, bbox=[50, 50, 8, 8], area=64, iscrowd=0)])
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'annotations' / 'instances_train.json').write_text(json.dumps(ann))
    insts = _dataset(str(tmp_path)).get_data_info(0)['instances']
    assert [(i['bbox'], i['bbox_label'], i['birads']) for i in insts] == [
        ([10, 10, 30, 30], 0, 5), ([10, 10, 30, 30], 0, 4), ([50, 50, 58, 58], 1, -1)]
