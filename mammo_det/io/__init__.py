"""Reading mammograms (DICOM, and the raster files of film sets) and their geometry: numpy, pydicom and cv2 only
(no torch, no mmdet)."""
from .image import ImageError, StoredImage


def read_image(path) -> StoredImage:
    """A DICOM (:func:`dicom.read_dicom`) or, by its suffix, a raster file (:func:`raster.read_raster`)."""
    from .raster import is_raster, read_raster

    if is_raster(path):
        return read_raster(path)
    from .dicom import read_dicom

    return read_dicom(path)


__all__ = ['ImageError', 'StoredImage', 'read_image']
