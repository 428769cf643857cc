# FCOS R50-FPN (GN head, centre sampling, GIoU) with a BI-RADS (3/4/5) branch per point: the anchor-free dense
# detector. mmdet ships no FCOS model base; this leaf turns the RetinaNet base into FCOS (its neck from P3, point
# head, no anchor assigner), as mmdet's fcos_r50-caffe_fpn_gn-head-center-normbbox-centeronreg-giou config does.
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py', '../_base_/datasets/vindr-mammo_detection.py',
          '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py']
pretrained = 'https://download.pytorch.org/models/resnet50-0676ba61.pth'  # torchvision://resnet50, by URL
num_classes = 10  # finding types in the annotation file
birads_loss_weight = 0.5  # weight of the BI-RADS cross-entropy next to the box losses

model = dict(
    type='FCOS',
    data_preprocessor=dict(type='MammoDataPreprocessor'),  # 1-channel uint8/16 in, RGB on the device
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(start_level=1, add_extra_convs='on_output', relu_before_extra_convs=True),
    bbox_head=dict(
        _delete_=True, type='BiradsFCOSHead', num_classes=num_classes, in_channels=256, stacked_convs=4,
        feat_channels=256, strides=[8, 16, 32, 64, 128], norm_on_bbox=True, centerness_on_reg=True,
        center_sampling=True, conv_bias=True, norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=1.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_birads=dict(type='CrossEntropyLoss', loss_weight=birads_loss_weight)),
    train_cfg=dict(_delete_=True, allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.6),
                  max_per_img=100))
param_scheduler = [dict(type='ConstantLR', factor=1.0 / 3, by_epoch=False, begin=0, end=500),
                   dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)]
optim_wrapper = dict(optimizer=dict(lr=0.01), paramwise_cfg=dict(bias_lr_mult=2., bias_decay_mult=0.),
                     clip_grad=dict(max_norm=35, norm_type=2))  # mmdet's FCOS, for 8 x 2 images
