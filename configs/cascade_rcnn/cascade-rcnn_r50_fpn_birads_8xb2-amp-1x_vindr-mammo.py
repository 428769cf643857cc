# Mixed precision: anchor/gt IoUs forced to float32 (a 300 px box's area overflows float16), dynamic loss
# scaling. The R-CNN stages' assigners see proposals decoded against float32 anchors, already float32.
_base_ = './cascade-rcnn_r50_fpn_birads_1x_vindr-mammo.py'

model = dict(train_cfg=dict(rpn=dict(assigner=dict(iou_calculator=dict(type='Fp32BboxOverlaps2D')))))
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
