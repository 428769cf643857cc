"""What a dataset adapter hands the conversion core: one :class:`ImageRecord` per image, with its boxes, and a
:class:`ParseLog` of what parsing left out."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from mammo_det.errors import UserError

SAFE_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$')


class ConversionError(UserError, ValueError):
    """Bad input; the message names the file, the row or the field."""


def fail_or_skip(msg: str, on_error: str, skipped: list) -> None:
    if on_error == 'fail':
        raise ConversionError(msg)
    skipped.append(msg)


def check_id(value: str, what: str) -> str:
    """An id used in output paths: letters, digits, '.', '_', '-' (no separators, no '..')."""
    if not SAFE_ID.match(value or '') or '..' in value:
        raise ValueError(f'{what} {value!r} is not a path-safe id (letters, digits, ".", "_", "-")')
    return value


@dataclass
class Box:
    categories: List[str]
    birads: Optional[int]
    xyxy: tuple  # original pixels, as the release gives it (the core clips it to the image)
    line: int = 0  # the adapter's line or ROI number
    where: str = ''  # the adapter's file and row, for the report of a box the core drops or shrinks
    birads_raw: Optional[str] = None  # the dataset's own assessment text
    pathology: Optional[str] = None  # 'malignant', 'benign' or None
    extra: dict = field(default_factory=dict)  # more annotation fields (a dataset's own codes, e.g. embed_codes)


@dataclass
class PendingBox:
    """A box whose extent is known only once its image is read: the adapter's ``locate`` hook finds it in the
    worker (CBIS-DDSM: the foreground of a mask file chosen among ``sources`` by its content)."""
    categories: List[str]
    birads: Optional[int]
    birads_raw: Optional[str]
    pathology: Optional[str]
    sources: List[str]  # the files the hook may read
    where: str  # 'file line N', for the report

    def located(self, xyxy: tuple) -> Box:
        return Box(self.categories, self.birads, tuple(xyxy), 0, where=self.where, birads_raw=self.birads_raw,
                   pathology=self.pathology)


@dataclass
class ImageRecord:
    source_id: str  # the image's id in the dataset, also the PNG's name (validated as path-safe)
    study_id: str  # path-safe; the PNG folder and the bootstrap unit
    patient_id: str
    source: str  # the image file
    laterality: str
    view_position: str
    split: Optional[str] = None  # 'train' or 'test' where the release has an official split
    width: Optional[int] = None  # expected size, when the release states it
    height: Optional[int] = None
    fields: dict = field(default_factory=dict)  # more COCO image fields (breast_birads, dataset identifiers ...)
    boxes: List[Box] = field(default_factory=list)
    pending: List[PendingBox] = field(default_factory=list)
    first_line: int = 0
    # (row, column) mm per pixel the dataset documents, for files that do not say (mini-MIAS: 0.2 mm)
    spacing: Optional[tuple] = None


@dataclass
class ParseLog:
    """What an adapter left out while parsing its release, each with the reason, and oddities that changed
    nothing; all of it goes to ``report.json``."""
    on_error: str = 'fail'
    rows: List[str] = field(default_factory=list)  # bad rows: stop the run, or skip them with --on-error skip
    images: List[str] = field(default_factory=list)  # images the converter must not use (documented per dataset)
    boxes: List[str] = field(default_factory=list)  # boxes it cannot place
    warnings: List[str] = field(default_factory=list)
    # labels the dataset gives that have no category of ours, and the number of boxes that carried each
    left_out_labels: Dict[str, int] = field(default_factory=dict)

    def leave_out(self, label: str, boxes: int = 1) -> None:
        self.left_out_labels[label] = self.left_out_labels.get(label, 0) + boxes

    def row(self, msg: str) -> None:
        fail_or_skip(msg, self.on_error, self.rows)
