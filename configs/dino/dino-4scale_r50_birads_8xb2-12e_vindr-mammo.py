# DINO 4-scale R50 (DETR family; mmdet's zoo model, unchanged) with BI-RADS (3/4/5) from the neck's features in each
# box it predicts. mmdet's optimizer and 12-epoch schedule; this project's dataset, runtime and pipelines.
_base_ = ['../_base_/datasets/vindr-mammo_detection.py', '../_base_/default_runtime.py']
birads_loss_weight = 1.0  # weight of the BI-RADS cross-entropy next to the box losses
max_epochs = 12

model = dict(type='BiradsDetector', detector='mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
             detector_options=dict(test_cfg=dict(max_per_img=100)),
             birads_head=dict(loss_birads=dict(type='CrossEntropyLoss', loss_weight=birads_loss_weight)))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[11], gamma=0.1)]
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
                     clip_grad=dict(max_norm=0.1, norm_type=2),
                     paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
auto_scale_lr = dict(enable=False, base_batch_size=16)  # the lr above is mmdet's DINO's, for 8 GPUs x 2 images
