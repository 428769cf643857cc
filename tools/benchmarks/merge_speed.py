"""Merge speed: joins N shard outputs holding 100,000 images' annotations (synthetic COCO files written here, no
pixels), as `mammo-det merge` does after a Slurm array conversion.

    python tools/benchmarks/merge_speed.py [--images 100000] [--shards 16] [--link]

Prints the merge time (target: under 30 s for 100,000 images) and checks that the merged ids are 1..N.
``--link`` also writes a one-byte PNG per image and times the merge with hard-linking them (the image part).
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))

from data_converters.splits import shard_of  # noqa: E402
from data_converters.merge import merge  # noqa: E402


def write_shards(tmp, n_images, n_shards, link, seed=0):
    rng = np.random.default_rng(seed)
    cats = [dict(id=i, name=f'c{i}', supercategory='finding') for i in range(1, 11)]
    shards = {k: {s: dict(images=[], annotations=[]) for s in ('train', 'val', 'test')}
              for k in range(1, n_shards + 1)}
    for i in range(n_images):
        study = f'{i // 4:08x}'
        k = shard_of(study, n_shards)
        split = ('train', 'val', 'test')[int(rng.choice(3, p=[0.7, 0.1, 0.2]))]
        coco = shards[k][split]
        im = dict(id=len(coco['images']) + 1, file_name=f'{study}/{i:08x}.png', width=1600, height=2048,
                  dataset='synthetic', source_id=f'{i:08x}', study_id=study, patient_id=study,
                  laterality='LR'[i % 2], view_position=('CC', 'MLO')[i // 2 % 2], breast_birads=1,
                  breast_density='C', orig_width=2800, orig_height=3518,
                  transform=dict(orig_width=2800, orig_height=3518, crop=[0, 0, 2800, 3518], out_width=1600,
                                 out_height=2048), voi='window 0', manufacturer='SIEMENS', manufacturer_model='M')
        coco['images'].append(im)
        for _ in range(int(rng.poisson(0.3))):
            coco['annotations'].append(dict(id=len(coco['annotations']) + 1, image_id=im['id'], category_id=1,
                                            bbox=[10.0, 20.0, 30.0, 40.0], area=1200.0, iscrowd=0, birads=4,
                                            birads_raw='BI-RADS 4', pathology=None))
    dirs = []
    for k, splits in shards.items():
        d = os.path.join(tmp, f'{k}-of-{n_shards}')
        os.makedirs(os.path.join(d, 'annotations'))
        for s, coco in splits.items():
            with open(os.path.join(d, 'annotations', f'instances_{s}.json'), 'w') as fh:
                json.dump(dict(info={}, categories=cats, **coco), fh)
            for im in coco['images']:
                if link:
                    p = os.path.join(d, 'images', im['file_name'])
                    os.makedirs(os.path.dirname(p), exist_ok=True)
                    open(p, 'wb').write(b'x')
        report = dict(dataset='synthetic', classes=[c['name'] for c in cats], options={}, split_options={},
                      release_images=n_images, shard=[k, n_shards], reused_images=0, converted_images=0,
                      skipped_rows=[], skipped_images=[], skipped_files=[], skipped_boxes=[], warnings=[])
        with open(os.path.join(d, 'report.json'), 'w') as fh:
            json.dump(report, fh)
        dirs.append(d)
    return dirs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--images', type=int, default=100000)
    ap.add_argument('--shards', type=int, default=16)
    ap.add_argument('--link', action='store_true')
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dirs = write_shards(tmp, args.images, args.shards, args.link)
        t = time.perf_counter()
        report = merge(os.path.join(tmp, 'merged'), dirs, images=False, progress=False)
        t_ann = time.perf_counter() - t
        n = sum(s['images'] for s in report['splits'].values())
        ids = json.load(open(os.path.join(tmp, 'merged', 'annotations', 'instances_train.json')))['images']
        assert n == args.images and [im['id'] for im in ids] == list(range(1, len(ids) + 1))
        boxes = sum(s['annotations'] for s in report['splits'].values())
        print(f'{args.images} images in {args.shards} shards, {boxes} boxes: merged annotations in {t_ann:.2f} s '
              '(target < 30 s)')
        if args.link:
            import shutil
            shutil.rmtree(os.path.join(tmp, 'merged'))
            t = time.perf_counter()
            merge(os.path.join(tmp, 'merged'), dirs, images=True, progress=False)
            print(f'the same with the {args.images} PNGs hard-linked: {time.perf_counter() - t:.2f} s')


if __name__ == '__main__':
    main()
