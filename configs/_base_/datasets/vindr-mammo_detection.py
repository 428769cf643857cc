# VinDr-Mammo as written by `mammo-det convert ROOT data/vindr-mammo`.
dataset_type = 'MammoDataset'  # any converted set (VinDrMammoDataset: its old name)
data_root = 'data/vindr-mammo/'
image_scale = (2048, 2048)  # long side 2048 px, aspect kept (mammograms are ~3500 px tall originally)
backend_args = None
# Loader processes per GPU. Lean samples (one channel, 8/16 bit) decode at about 30 images/s per process at long
# side 2048 (tools/benchmarks/train_speed.py); 4 feed an H100-class GPU. Give Slurm CPUS_PER_TASK >= this + 1, and
# Docker --shm-size of at least 1 GB (samples pass through shared memory).
workers_per_gpu = 4
# How `mammo-det convert` made the training images; `mammo-det infer` applies the same to raw DICOMs.
mammo_preprocess = dict(max_size=2048, bit_depth=8, crop=True, voi='auto', window_index=0)

train_pipeline = [
    dict(type='LoadMammogram'),  # 8- or 16-bit PNG, kept at full precision
    dict(type='LoadBiradsAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),  # left and right breasts mirror each other
    dict(type='PackMammoInputs'),
]
# Also what `mammo-det infer` runs: raw DICOMs get mammo_preprocess, and the recorded crop/resize travels in the
# `mammo_transform` meta key so boxes map back to the DICOM grid (annotations are simply absent there).
test_pipeline = [
    dict(type='LoadMammogram', dicom_cfg=mammo_preprocess),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadBiradsAnnotations', with_bbox=True),
    dict(type='PackMammoInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'mammo_transform')),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=workers_per_gpu,
    persistent_workers=True,  # no worker start-up at every epoch
    pin_memory=True,  # page-locked batches: faster, asynchronous copies to the GPU
    # all images with findings each epoch + a fresh quarter of the negatives
    sampler=dict(type='PositiveNegativeSampler', neg_fraction=0.25),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/'),
        filter_cfg=dict(filter_empty_gt=False, min_size=0),  # negatives stay: they make the FPPI
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=workers_per_gpu,
    persistent_workers=True,
    pin_memory=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='images/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = dict(val_dataloader,
                       dataset=dict(val_dataloader['dataset'], ann_file='annotations/instances_test.json'))
val_evaluator = dict(type='MammoMetric', ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = dict(type='MammoMetric', ann_file=data_root + 'annotations/instances_test.json')
