"""Conversion speed on full-size synthetic DICOMs (3518 x 2800 and the other vendor sizes), measured side by side.

Prints per-image times (start-up excluded, median of the images) of
  (a) mammo-det's conversion (decode, breast crop, one resize, window LUT, PNG write),
  (b) the floor for the same output: pydicom decode, one INTER_AREA resize to the output size, the PNG write,
  (c) the official VinDr recipe ported naively (apply_voi_lut in float64, min-max, full-resolution 8-bit PNG),
the throughput of the converter's worker function in a warm pool of 1 and N processes, the end-to-end wall time
of `convert()`, and the peak memory of a worker.

    python tools/benchmarks/convert_speed.py [--images 8] [--workers 2]
"""
import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from multiprocessing import get_context

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))

from data_converters.core import ConvertOptions  # noqa: E402
from data_converters.formats import convert  # noqa: E402
from data_converters.synth.vindr import plan_dataset, render_dicom, write_csvs  # noqa: E402
from data_converters.worker import ImageTask, convert_image, init_worker, write_png  # noqa: E402
from mammo_det.io.preprocess import preprocess  # noqa: E402


def _median_time(fn, items):
    times = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _write_release(root: str, n_images: int) -> tuple:
    """A synthetic full-size release under ``root``: (planned images, [(DICOM path, boxes)])."""
    images = plan_dataset(max(n_images // 4, 1), seed=7, scale=1.0)[:n_images]
    write_csvs(images, root)
    paths = []
    for im in images:
        path = os.path.join(root, 'images', im.study_id, f'{im.image_id}.dicom')
        render_dicom(im, path)
        paths.append((path, [f.box for f in im.findings]))
    return images, paths


def _per_image(paths: list, out: str, max_size: int) -> None:
    """(a) our conversion, (b) the floor of decode + resize + PNG, (c) the naive recipe: median ms per image."""
    import pydicom
    from pydicom.pixels import apply_voi_lut

    sizes = {}

    def ours(item):
        path, boxes = item
        img, t, _ = preprocess(path, boxes=boxes, max_size=max_size)
        sizes[path] = (t.out_width, t.out_height)
        write_png(os.path.join(out, 'ours.png'), img)

    def floor(item):
        path, _ = item
        px = pydicom.dcmread(path).pixel_array
        small = cv2.resize(px, sizes[path], interpolation=cv2.INTER_AREA)
        cv2.imwrite(os.path.join(out, 'floor.png'), (small >> 4).astype(np.uint8))

    def naive(item):
        path, _ = item
        ds = pydicom.dcmread(path)
        data = apply_voi_lut(ds.pixel_array, ds).astype(np.float64)
        if ds.PhotometricInterpretation == 'MONOCHROME1':
            data = np.amax(data) - data
        data = data - np.min(data)
        data = data / np.max(data)
        cv2.imwrite(os.path.join(out, 'naive.png'), (data * 255).astype(np.uint8))

    for fn in (ours, floor, naive):  # warm-up: imports, first-call costs
        fn(paths[0])
    t_ours = _median_time(ours, paths)
    t_floor = _median_time(floor, paths)
    t_naive = _median_time(naive, paths)
    print(f'(a) mammo-det conversion : {t_ours * 1000:7.1f} ms/image')
    print(f'(b) floor (decode+resize+PNG): {t_floor * 1000:7.1f} ms/image   ours/floor = {t_ours / t_floor:.2f}x'
          '  (target <= 1.25x)')
    print(f'(c) naive VinDr recipe   : {t_naive * 1000:7.1f} ms/image   naive/ours = {t_naive / t_ours:.2f}x'
          '  (target >= 2x)')


def _pool_scaling(images: list, paths: list, out: str, args) -> None:
    """The library's worker function in a warm process pool (spawn start-up excluded), 1 and N workers."""
    popts = dict(voi='auto', window_index=0, bit_depth=8, crop=True, max_size=args.max_size)
    tasks = [ImageTask(source_id=im.image_id, source=path, png=os.path.join(out, f'{im.image_id}.png'),
                       expect_size=(im.cols, im.rows), crop_boxes=boxes, preprocess=popts, input_hash='')
             for im, (path, boxes) in zip(images, paths)] * args.repeat
    rates = {}
    for workers in (1, args.workers):
        with get_context('spawn').Pool(workers, initializer=init_worker) as pool:
            pool.map(convert_image, tasks[:workers])  # warm-up: imports in every worker
            t = time.perf_counter()
            results = pool.map(convert_image, tasks, chunksize=1)
            rates[workers] = len(tasks) / (time.perf_counter() - t)
        assert not any('error' in r for r in results)
    print(f'throughput, {len(tasks)} images in a warm pool: 1 worker {rates[1]:.2f} img/s, {args.workers} '
          f'workers {rates[args.workers]:.2f} img/s -> speed-up {rates[args.workers] / rates[1]:.2f}x '
          f'(target >= 1.8x with 2)')


def _end_to_end(root: str, tmp: str, n_images: int, args) -> None:
    """convert() as users run it, worker start-up included, for reference; then a worker's peak memory."""
    walls = {}
    for workers in (1, args.workers):
        t = time.perf_counter()
        convert(root, os.path.join(tmp, f'coco{workers}'), ConvertOptions(
            max_size=args.max_size, workers=workers, progress=False, val_fraction=0.0))
        walls[workers] = time.perf_counter() - t
    print(f'convert() end to end, {n_images} images (worker start-up included): 1 worker {walls[1]:.2f} s, '
          f'{args.workers} workers {walls[args.workers]:.2f} s')
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f'peak RSS of a worker process: {rss:.0f} MiB (it holds one image at a time, whatever the dataset size)')


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--images', type=int, default=8, help='full-size images (4 per study)')
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--max-size', type=int, default=2048)
    p.add_argument('--repeat', type=int, default=3, help='passes over the images for the scaling measurement')
    args = p.parse_args()
    init_worker()  # (a), (b) and (c) all run as in a converter worker: one OpenCV thread, image buffers kept
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, 'vindr')
        images, paths = _write_release(root, args.images)
        profiles = sorted({f'{im.profile} {im.rows}x{im.cols}' for im in images})
        print(f'{len(paths)} synthetic DICOMs: {", ".join(profiles)}; output max side {args.max_size}, 8-bit PNG')
        out = os.path.join(tmp, 'png')
        os.makedirs(out, exist_ok=True)
        _per_image(paths, out, args.max_size)
        _pool_scaling(images, paths, out, args)
        _end_to_end(root, tmp, len(paths), args)


if __name__ == '__main__':
    main()
