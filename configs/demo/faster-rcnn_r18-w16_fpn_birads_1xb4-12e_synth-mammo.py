# A Faster R-CNN + BI-RADS small enough to train on 2 CPU cores in minutes, on `mammo-det synth --scale 0.15` data
# converted with `--max-size 320 --classes mass,calcification`. Random init: the demo, tests and CI download nothing.
_base_ = '../faster_rcnn/faster-rcnn_r50_fpn_birads_1x_vindr-mammo.py'

data_root = 'work_dirs/demo/coco/'  # output of `mammo-det convert` (the demo writes it)
classes = ('Mass', 'Suspicious Calcification')  # the converted subset
image_scale = (320, 320)  # long side in pixels
mammo_preprocess = dict(max_size=320, bit_depth=8, crop=True, voi='auto', window_index=0)  # as converted
batch_size = 4  # images per step
lr = 0.02  # SGD learning rate
max_epochs = 12  # passes over the positives (+ a quarter of the negatives each)

model = dict(
    backbone=dict(depth=18, base_channels=16, init_cfg=None, norm_eval=False, frozen_stages=-1),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64,
                  anchor_generator=dict(scales=[4], ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=len(classes))),
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300), rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200), rcnn=dict(max_per_img=50, score_thr=0.01)))

train_pipeline = [
    dict(type='LoadMammogram'),
    dict(type='LoadBiradsAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackMammoInputs'),
]
test_pipeline = [  # also `mammo-det infer`'s (see ../_base_/datasets/vindr-mammo_detection.py)
    dict(type='LoadMammogram', dicom_cfg=mammo_preprocess),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadBiradsAnnotations', with_bbox=True),
    dict(type='PackMammoInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'mammo_transform')),
]
metainfo = dict(classes=classes)
train_dataloader = dict(
    batch_size=batch_size, num_workers=0, persistent_workers=False,
    sampler=dict(neg_fraction=0.25),
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = dict(ann_file=data_root + 'annotations/instances_test.json')

train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=lr * 0.05, begin=0, end=max_epochs, by_epoch=True)
]
optim_wrapper = dict(optimizer=dict(lr=lr), clip_grad=dict(max_norm=10, norm_type=2))
auto_scale_lr = dict(base_batch_size=batch_size)  # lr above is for 1 x 4 images
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=max_epochs, save_best=None))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)  # the demo's numbers repeat from run to run
