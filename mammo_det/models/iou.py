"""IoU in float32 under mixed precision: mammogram boxes overflow float16."""
from mmdet.models.task_modules import BboxOverlaps2D
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import get_box_tensor


@TASK_UTILS.register_module()
class Fp32BboxOverlaps2D(BboxOverlaps2D):
    """BboxOverlaps2D that always computes in float32.

    Under AMP, boxes decoded from half-precision head outputs are float16, whose largest value is 65504: the
    area of a 300 x 300 px box (a typical mass at the training scale) is already 90000, so IoUs become inf/nan
    and the assigner silently matches nothing. The parent keeps the input dtype.
    """

    def __call__(self, bboxes1, bboxes2, mode='iou', is_aligned=False):
        return super().__call__(get_box_tensor(bboxes1).float(), get_box_tensor(bboxes2).float(), mode=mode,
                                is_aligned=is_aligned)
