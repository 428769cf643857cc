"""Other detection frameworks' formats: the converted data exported in their layouts (:mod:`.export`) and their
predictions imported as this project's COCO results (:mod:`.imports`). numpy only: no torch, no mmdet."""
