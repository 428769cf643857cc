# A Faster R-CNN + BI-RADS small enough to train on 2 CPU cores in minutes, on `mammo-det synth --scale 0.15` data
# converted with `--max-size 320 --classes mass,calcification`. Random init: the demo, tests and CI download nothing.
_base_ = ['mmdet::_base_/models/faster-rcnn_r50_fpn.py', '../_base_/datasets/vindr-mammo_detection.py',
          '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py']

data_root = 'work_dirs/demo/coco/'  # output of `mammo-det convert` (the demo writes it)
classes = ('Mass', 'Suspicious Calcification')  # the converted subset
image_scale = (320, 320)  # long side in pixels
mammo_preprocess = dict(max_size=320, bit_depth=8, crop=True, voi='auto', window_index=0)  # as converted
batch_size = 4  # images per step
lr = 1e-3  # AdamW learning rate (random init: AdamW converges in the demo's budget where SGD did not)
max_epochs = 24  # passes over the positives (+ a quarter of the negatives each)

# The lesions are 15-40 px at this scale: the pyramid starts at stride 8 (P3-P6), which halves the cost of an
# iteration against P2-P6. Faster R-CNN's defaults left near-duplicate and loose boxes scored as high as the tight
# ones; a GIoU box loss on the decoded boxes, RoI positives from IoU 0.6 and NMS at 0.4 make one tight box per
# lesion.
model = dict(
    data_preprocessor=dict(type='MammoDataPreprocessor'),  # 1-channel uint8/16 in, float RGB made on the device
    backbone=dict(depth=18, base_channels=16, init_cfg=None, norm_eval=False, frozen_stages=-1),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=64, start_level=1, num_outs=4),
    rpn_head=dict(in_channels=64, feat_channels=64,
                  anchor_generator=dict(scales=[2, 3], ratios=[0.5, 1.0, 2.0], strides=[8, 16, 32, 64])),
    roi_head=dict(
        type='BiradsRoIHead',  # BI-RADS from each RoI's features (the two-stage family's branch)
        bbox_roi_extractor=dict(out_channels=64, featmap_strides=[8, 16, 32, 64]),
        bbox_head=dict(type='BiradsBBoxHead', in_channels=64, fc_out_channels=256, num_classes=len(classes),
                       reg_decoded_bbox=True, loss_bbox=dict(_delete_=True, type='GIoULoss', loss_weight=10.0),
                       loss_birads=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.5))),
    train_cfg=dict(rpn_proposal=dict(nms_pre=300, max_per_img=100),
                   rcnn=dict(assigner=dict(pos_iou_thr=0.6, neg_iou_thr=0.6, min_pos_iou=0.6),
                             sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200),
                  rcnn=dict(max_per_img=50, score_thr=0.01, nms=dict(iou_threshold=0.4))))

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
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=lr * 0.01, begin=0, end=max_epochs, by_epoch=True)
]
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=lr, weight_decay=0.05),
                     clip_grad=dict(max_norm=10, norm_type=2))
auto_scale_lr = dict(base_batch_size=batch_size)  # lr above is for 1 x 4 images
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=max_epochs, save_best=None))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)  # the demo's numbers repeat from run to run
