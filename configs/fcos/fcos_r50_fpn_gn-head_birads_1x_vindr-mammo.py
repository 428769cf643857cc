# FCOS R50-FPN (GN head, centre sampling, GIoU: mmdet's zoo model) with BI-RADS (3/4/5) from the neck's features in
# each box: the anchor-free dense detector. The zoo model's caffe backbone is swapped for torchvision's ResNet-50,
# as every other shipped config uses.
_base_ = ['../_base_/datasets/vindr-mammo_detection.py', '../_base_/schedules/schedule_1x.py',
          '../_base_/default_runtime.py']
pretrained = 'torchvision://resnet50'  # ImageNet weights, fetched by URL
birads_loss_weight = 0.5  # weight of the BI-RADS cross-entropy next to the box losses

model = dict(
    type='BiradsDetector',
    detector='mmdet::fcos/fcos_r50-caffe_fpn_gn-head-center-normbbox-centeronreg-giou_1x_coco.py',
    detector_options=dict(backbone=dict(style='pytorch', init_cfg=dict(checkpoint=pretrained))),
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True),  # torchvision's normalisation
    birads_head=dict(loss_birads=dict(type='CrossEntropyLoss', loss_weight=birads_loss_weight)))
param_scheduler = [dict(type='ConstantLR', factor=1.0 / 3, by_epoch=False, begin=0, end=500),
                   dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)]
optim_wrapper = dict(optimizer=dict(lr=0.01), paramwise_cfg=dict(bias_lr_mult=2., bias_decay_mult=0.),
                     clip_grad=dict(max_norm=35, norm_type=2))  # mmdet's FCOS, for 8 x 2 images
