# Faster R-CNN R50-FPN with a BI-RADS (3/4/5) branch on each RoI, 10 VinDr-Mammo finding types.
_base_ = ['mmdet::_base_/models/faster-rcnn_r50_fpn.py', '../_base_/datasets/vindr-mammo_detection.py',
          '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py']
pretrained = 'https://download.pytorch.org/models/resnet50-0676ba61.pth'  # torchvision://resnet50, by URL
num_classes = 10  # finding types in the annotation file (4 for --classes mass,calcification,...)
birads_loss_weight = 0.5  # weight of the BI-RADS cross-entropy next to the box losses

model = dict(
    data_preprocessor=dict(type='MammoDataPreprocessor'),  # 1-channel uint8/16 in, float RGB made on the device
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    roi_head=dict(
        type='BiradsRoIHead',
        bbox_head=dict(
            type='BiradsBBoxHead',
            num_classes=num_classes,
            loss_birads=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=birads_loss_weight))))
