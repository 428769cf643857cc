# DINO 4-scale R50 (DETR family) with a BI-RADS (3/4/5) branch per decoder layer, on the matching and the
# denoising queries. mmdet's DINO config already holds COCO's dataset and runtime, and mmengine forbids the same key
# in two sibling bases, so this file overrides the data keys itself instead of listing
# ../_base_/datasets/vindr-mammo_detection.py (whose values it mirrors, as the Deformable DETR config does).
_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'
custom_imports = dict(imports=['mammo_det.registry'], allow_failed_imports=False)
custom_hooks = [dict(type='SafeCheckpointHook')]  # weights_only=True resume under torch >= 2.6

num_classes = 10  # finding types in the annotation file
birads_loss_weight = 1.0  # weight of the BI-RADS cross-entropy of each decoder layer
data_root = 'data/vindr-mammo/'  # output of `mammo-det convert`
image_scale = (2048, 2048)  # long side 2048 px, aspect kept
workers_per_gpu = 4  # loader processes per GPU (see ../_base_/datasets/vindr-mammo_detection.py)
mammo_preprocess = dict(max_size=2048, bit_depth=8, crop=True, voi='auto', window_index=0)  # as converted

pretrained = 'https://download.pytorch.org/models/resnet50-0676ba61.pth'  # torchvision://resnet50, by URL

model = dict(type='BiradsDINO',  # mmdet's detector, also handing the neck's maps to the BI-RADS branch
             data_preprocessor=dict(type='MammoDataPreprocessor'),  # 1-channel uint8/16 in, RGB on the device
             backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
             bbox_head=dict(type='BiradsDINOHead', num_classes=num_classes,
                            loss_birads=dict(type='CrossEntropyLoss', loss_weight=birads_loss_weight)),
             test_cfg=dict(max_per_img=100))
train_pipeline = [
    dict(type='LoadMammogram'),
    dict(type='LoadBiradsAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackMammoInputs'),
]
test_pipeline = [  # also `mammo-det infer`'s
    dict(type='LoadMammogram', dicom_cfg=mammo_preprocess),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadBiradsAnnotations', with_bbox=True),
    dict(type='PackMammoInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'mammo_transform')),
]
_data = dict(type='VinDrMammoDataset', data_root=data_root, data_prefix=dict(img='images/'))
train_dataloader = dict(
    num_workers=workers_per_gpu, pin_memory=True,
    sampler=dict(_delete_=True, type='PositiveNegativeSampler', neg_fraction=0.25),
    dataset=dict(**_data, ann_file='annotations/instances_train.json', pipeline=train_pipeline,
                 filter_cfg=dict(filter_empty_gt=False, min_size=0)))
val_dataloader = dict(num_workers=workers_per_gpu, pin_memory=True,
                      dataset=dict(**_data, ann_file='annotations/instances_val.json', pipeline=test_pipeline))
test_dataloader = dict(num_workers=workers_per_gpu, pin_memory=True,
                       dataset=dict(**_data, ann_file='annotations/instances_test.json', pipeline=test_pipeline))
val_evaluator = dict(_delete_=True, type='MammoMetric', ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = dict(_delete_=True, type='MammoMetric', ann_file=data_root + 'annotations/instances_test.json')
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2, save_best='mammo/mAP', rule='greater'))
auto_scale_lr = dict(base_batch_size=16)  # the lr of mmdet's DINO is for 8 GPUs x 2 images
