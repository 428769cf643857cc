# Cascade R-CNN R50-FPN; the last of the three stages carries the BI-RADS branch.
_base_ = ['mmdet::_base_/models/cascade-rcnn_r50_fpn.py', '../_base_/datasets/vindr-mammo_detection.py',
          '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py']
pretrained = 'https://download.pytorch.org/models/resnet50-0676ba61.pth'  # torchvision://resnet50, by URL
num_classes = 10  # finding types in the annotation file
birads_loss_weight = 0.5  # weight of the BI-RADS cross-entropy next to the box losses


def _stage(std, birads=False):
    return dict(
        type='BiradsBBoxHead' if birads else 'Shared2FCBBoxHead',
        in_channels=256, fc_out_channels=1024, roi_feat_size=7, num_classes=num_classes,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=std),
        reg_class_agnostic=True,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0),
        **(dict(loss_birads=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=birads_loss_weight))
           if birads else {}))


model = dict(
    data_preprocessor=dict(type='MammoDataPreprocessor'),  # 1-channel uint8/16 in, float RGB made on the device
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    roi_head=dict(
        type='CascadeBiradsRoIHead',
        bbox_head=[_stage([0.1, 0.1, 0.2, 0.2]), _stage([0.05, 0.05, 0.1, 0.1]),
                   _stage([0.033, 0.033, 0.067, 0.067], birads=True)]))
