"""DICOM reading and image geometry: numpy, pydicom and cv2 only (no torch, no mmdet)."""
