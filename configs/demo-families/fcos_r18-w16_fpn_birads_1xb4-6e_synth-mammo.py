# FCOS (the dense one-stage family) on the demo's data, backbone and neck, its BI-RADS from BiradsDetector's box
# classifier, as every family but R-CNN.
_base_ = ['../demo/faster-rcnn_r18-w16_fpn_birads_1xb4-24e_synth-mammo.py', './_base_/demo_backbone.py']
model = dict(
    _delete_=True, type='BiradsDetector', data_preprocessor={{_base_.preprocessor}},
    detector=dict(
        type='FCOS', backbone={{_base_.backbone}}, neck={{_base_.neck}},
        bbox_head=dict(type='FCOSHead', num_classes=2, in_channels=64, stacked_convs=2, feat_channels=64,
                       strides=[8, 16, 32, 64], regress_ranges=((-1, 32), (32, 64), (64, 128), (128, 1e8)),
                       norm_on_bbox=True, centerness_on_reg=True, center_sampling=True, conv_bias=True,
                       norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
                       loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
                       loss_bbox=dict(type='GIoULoss', loss_weight=1.0),
                       loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
        train_cfg=dict(allowed_border=-1, pos_weight=-1, debug=False),
        test_cfg=dict(nms_pre=300, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.4),
                      max_per_img=50)))
train_cfg = {{_base_.family_train_cfg}}
param_scheduler = {{_base_.family_param_scheduler}}
default_hooks = {{_base_.family_hooks}}
