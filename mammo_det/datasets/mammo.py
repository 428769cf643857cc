"""Any mammography set as converted by ``mammo-det convert`` (VinDr-Mammo, CBIS-DDSM, INbreast, mini-MIAS, EMBED):
a CocoDataset that keeps BI-RADS and image fields."""
from __future__ import annotations

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from mammo_det.vocab import FINDING_CATEGORIES

IMAGE_FIELDS = ('source_id', 'study_id', 'series_id', 'laterality', 'view_position', 'breast_birads',
                'breast_density', 'orig_width', 'orig_height', 'transform')


@DATASETS.register_module()
class MammoDataset(CocoDataset):
    """A converted mammography set: CocoDataset with the 10 finding types and, per instance, ``birads`` (3/4/5, -1
    when the box has none).

    Differs from the parent in: the class names (a subset follows the annotation file's categories when
    ``metainfo`` is not given), the ``birads`` of each instance, the image-level fields of the converter kept
    in the data info, and negatives kept by default (``filter_cfg=None``): ~89 % of real images have no
    finding and they are what false positives per image are measured on.
    """

    METAINFO = dict(classes=FINDING_CATEGORIES,
                    palette=[(220, 20, 60), (0, 130, 255), (0, 200, 80), (255, 170, 0), (160, 60, 220),
                             (0, 200, 200), (255, 100, 180), (120, 120, 0), (90, 90, 255), (200, 120, 60)])

    def __init__(self, *args, metainfo=None, **kwargs):
        kwargs.setdefault('filter_cfg', None)
        self._metainfo_arg = metainfo
        super().__init__(*args, metainfo=metainfo, **kwargs)

    def load_data_list(self):
        # Without explicit metainfo, take the classes (and their order) of the annotation file (--classes).
        if 'classes' not in (self._metainfo_arg or {}):
            from mmengine.fileio import get_local_path
            import json
            with get_local_path(self.ann_file, backend_args=self.backend_args) as path, open(path) as fh:
                cats = sorted(json.load(fh)['categories'], key=lambda c: c['id'])
            self._metainfo['classes'] = tuple(c['name'] for c in cats)
        return super().load_data_list()

    def parse_data_info(self, raw_data_info: dict) -> dict:
        info = super().parse_data_info(raw_data_info)
        img = raw_data_info['raw_img_info']
        for key in IMAGE_FIELDS:
            if key in img:
                info[key] = img[key]
        # The parent skips some annotations (ignored, smaller than a pixel, other classes): which ones is its
        # rule, asked of it one annotation at a time, so each kept instance gets the BI-RADS of its own annotation
        # (two equal boxes with different BI-RADS included).
        parent = super().parse_data_info
        kept = [ann for ann in raw_data_info['raw_ann_info']
                if parent(dict(raw_data_info, raw_ann_info=[ann]))['instances']]
        assert len(kept) == len(info['instances'])
        for inst, ann in zip(info['instances'], kept):
            b = ann.get('birads')
            inst['birads'] = -1 if b is None else int(b)
        return info


# The name of the first version, when it read VinDr-Mammo only: users' configs keep working.
DATASETS.register_module(name='VinDrMammoDataset', module=MammoDataset)
VinDrMammoDataset = MammoDataset
