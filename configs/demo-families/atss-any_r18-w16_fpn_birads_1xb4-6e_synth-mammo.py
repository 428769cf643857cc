# An MMDetection zoo detector the project does not ship (ATSS), given BI-RADS by BiradsDetector, on the demo's
# data, backbone and neck: the "any architecture" route of docs/training.md.
_base_ = ['../demo/faster-rcnn_r18-w16_fpn_birads_1xb4-24e_synth-mammo.py', './_base_/demo_backbone.py']
model = dict(
    _delete_=True, type='BiradsDetector', detector='mmdet::atss/atss_r50_fpn_1x_coco.py',
    detector_options=dict(backbone={{_base_.backbone}}, neck={{_base_.neck}},
                          bbox_head=dict(in_channels=64, feat_channels=64, stacked_convs=2,
                                         anchor_generator=dict(strides=[8, 16, 32, 64], octave_base_scale=4)),
                          test_cfg=dict(nms=dict(iou_threshold=0.4), max_per_img=50)),
    data_preprocessor={{_base_.preprocessor}})
train_cfg = {{_base_.family_train_cfg}}
param_scheduler = {{_base_.family_param_scheduler}}
default_hooks = {{_base_.family_hooks}}
