# A BI-RADS (3/4/5) classifier of boxes from any detector or framework: ResNet-50 and FPN features pooled in each
# box (RoIBiradsHead), trained on the ground-truth boxes with a BI-RADS and jittered copies of them. Apply it to
# another framework's predictions with `mammo-det birads apply`.
_base_ = ['../_base_/datasets/vindr-mammo_detection.py', '../_base_/schedules/schedule_1x.py',
          '../_base_/default_runtime.py']
pretrained = 'torchvision://resnet50'  # ImageNet weights, fetched by URL
jitter = 4  # jittered copies of each ground-truth box per step: boxes like a detector's, a little off

model = dict(
    type='BiradsClassifier',
    data_preprocessor=dict(type='MammoDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='ResNet', depth=50, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1,
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True, style='pytorch',
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(type='FPN', in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=4),
    birads_head=dict(jitter=jitter, detach_features=False))  # the features learn for BI-RADS alone here
optim_wrapper = dict(optimizer=dict(lr=0.02))  # for 8 x 2 images
