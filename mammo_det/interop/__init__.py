"""Other detection frameworks' formats: the converted data exported in their layouts (:mod:`.export`) and their
predictions imported as this project's COCO results (:mod:`.imports`). numpy only: no torch, no mmdet.

The names the command line offers live here, so that building its parser imports nothing else."""

EXPORT_FORMATS = ('yolo', 'rfdetr')
PRED_FORMATS = ('yolo-txt', 'yolo-json', 'coco', 'csv')
CATEGORY_IDS = ('dataset', 'contiguous0', 'contiguous1')
BOX_GRIDS = ('converted', 'dicom')
