"""One image's conversion (read, locate pending boxes, preprocess, write the PNG) and the process pool that runs
them; each finished image is journaled by the caller."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, List, Optional

import numpy as np

from mammo_det.fileio import atomic_path

from .records import PendingBox


@dataclass
class ImageTask:
    """What a worker needs to convert one image (picklable: ``locate`` is a module-level function)."""
    source_id: str
    source: str  # the image file
    png: str  # where the PNG goes
    expect_size: Optional[tuple]  # (width, height) the release states, checked against the file
    crop_boxes: List[tuple]  # xyxy in original pixels that the breast crop must keep
    preprocess: dict  # keyword arguments of mammo_det.io.preprocess.preprocess_image
    input_hash: str  # of what the conversion depends on (journal reuse)
    pending: List[PendingBox] = field(default_factory=list)
    # locate(pending box, image) -> (xyxy or None, problem or None): the adapter's hook for pending boxes
    locate: Optional[Callable] = None
    view: Optional[str] = None  # CC / MLO, for the landmarks
    laterality: Optional[str] = None
    spacing: Optional[tuple] = None  # the dataset's documented (row, col) mm per pixel, when the file has none


def keep_image_buffers() -> None:
    """Makes glibc keep freed image-sized buffers for the next image instead of unmapping them.

    By default glibc serves a large allocation (the 20 MB pixel data of a 3518 x 2800 DICOM, the decoded array, the
    crop) with fresh zeroed pages from the kernel and unmaps it when freed, so every image pays thousands of page
    faults: 20-40 ms an image, measured by tools/benchmarks/convert_speed.py (ours/floor 1.25-1.35x, 0.97-1.06x with
    this). A worker holds one image at a time, so keeping the freed memory raises its peak by one image's buffers.
    """
    import ctypes

    try:
        libc = ctypes.CDLL('libc.so.6')
    except OSError:
        return  # not glibc: nothing to tune
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest allowed value on 64-bit
    libc.mallopt(m_trim_threshold, 256 << 20)


def init_worker() -> None:
    import cv2
    cv2.setNumThreads(1)  # one image per process: threads inside each would oversubscribe the cores
    keep_image_buffers()


def write_png(path: str, image: np.ndarray) -> None:
    """Writes an 8- or 16-bit grayscale PNG atomically (temporary name, then rename)."""
    import cv2

    with atomic_path(path) as tmp:
        if not cv2.imwrite(tmp, image):
            raise OSError(f'cv2.imwrite failed for {tmp}')


def convert_image(task: ImageTask) -> dict:
    """Converts one image to a PNG. Returns the journal entry, or an entry with the error."""
    from mammo_det.io import ImageError, read_image
    from mammo_det.io.dicom import device
    from mammo_det.io.landmarks import find_landmarks
    from mammo_det.io.preprocess import preprocess_image

    try:
        img = read_image(task.source)
        located, problems = [], []
        for spec in task.pending:
            xyxy, problem = task.locate(spec, img)
            located.append(xyxy)
            if problem:
                problems.append(problem)
        crop_boxes = list(task.crop_boxes) + [b for b in located if b is not None]
        out, t, voi_desc = preprocess_image(img, boxes=crop_boxes, expect_size=task.expect_size, **task.preprocess)
        write_png(task.png, out)
        manufacturer, model = device(img.header)
        res = dict(source_id=task.source_id, input_hash=task.input_hash, transform=t.to_dict(), voi=voi_desc,
                   manufacturer=manufacturer, manufacturer_model=model,
                   **converted_spacing(img.header, task.spacing, t),
                   landmarks=find_landmarks(out, task.view, task.laterality).to_dict())
        if task.pending:
            res.update(located=located, problems=problems)
        return res
    except ImageError as exc:
        return dict(source_id=task.source_id, error=str(exc))
    except OSError as exc:
        return dict(source_id=task.source_id, error=f'{task.png}: cannot write ({exc})')


def converted_spacing(header, documented: Optional[tuple], t) -> dict:
    """``pixel_spacing`` ([row, column] mm per pixel of the converted image: the file's, or the dataset's documented
    one, divided by the resize) and ``pixel_spacing_source``; None and the reason where neither says."""
    from mammo_det.io.dicom import pixel_spacing

    found = pixel_spacing(header)
    if found is None and documented:
        found = (*documented, 'dataset')
    if found is None:
        return dict(pixel_spacing=None, pixel_spacing_source='no Pixel Spacing or Imager Pixel Spacing in the file, '
                                                             'none documented for the dataset')
    sx, sy = t.scale
    return dict(pixel_spacing=[round(found[0] / sy, 6), round(found[1] / sx, 6)], pixel_spacing_source=found[2])


def run_tasks(tasks: List[ImageTask], workers: int) -> Iterator[dict]:
    """Each task's result as it finishes: ``workers`` spawned processes, or this one."""
    from multiprocessing import get_context

    workers = min(workers, max(len(tasks), 1))
    if workers <= 1:
        if tasks:
            keep_image_buffers()  # this process is the worker
        yield from map(convert_image, tasks)
        return
    pool = get_context('spawn').Pool(workers, initializer=init_worker)
    try:
        yield from pool.imap_unordered(convert_image, tasks, chunksize=1)
    finally:
        pool.terminate()
