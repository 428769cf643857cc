# RetinaNet R50-FPN with a BI-RADS (3/4/5) branch per anchor: the anchor-based dense detector.
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py', '../_base_/datasets/vindr-mammo_detection.py',
          '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py']
pretrained = 'https://download.pytorch.org/models/resnet50-0676ba61.pth'  # torchvision://resnet50, by URL
num_classes = 10  # finding types in the annotation file
birads_loss_weight = 0.5  # weight of the BI-RADS cross-entropy next to the box losses (False below: no branch)

model = dict(data_preprocessor=dict(type='MammoDataPreprocessor'),  # 1-channel uint8/16 in, RGB on the device
             backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
             bbox_head=dict(type='BiradsRetinaHead', num_classes=num_classes, with_birads=True,
                            loss_birads=dict(type='CrossEntropyLoss', loss_weight=birads_loss_weight)))
optim_wrapper = dict(optimizer=dict(lr=0.01))  # mmdet's RetinaNet lr for 8 x 2 images
