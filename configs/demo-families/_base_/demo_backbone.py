# What the demo's family configs share besides the demo itself (each leaf also lists the demo config as a base):
# the demo model's backbone and neck as their start (read from its checkpoint, prefix by prefix), so that only the
# head of each family learns from scratch and does so in a few CPU epochs. Train the demo first (`make demo`): the
# checkpoint is its model.pth. Names here differ from the demo's, which mmengine requires of sibling bases.
demo_checkpoint = 'work_dirs/demo/model.pth'  # `mammo-det demo`'s output (relative to where training runs)
family_epochs = 6

family_train_cfg = dict(max_epochs=family_epochs, val_interval=family_epochs + 1)
family_param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', T_max=family_epochs, eta_min=1e-5, begin=0, end=family_epochs, by_epoch=True)]
family_hooks = dict(checkpoint=dict(interval=family_epochs))

preprocessor = dict(type='MammoDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                    bgr_to_rgb=True, pad_size_divisor=32)  # the demo's
backbone = dict(type='ResNet', depth=18, base_channels=16, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch',
                init_cfg=dict(type='Pretrained', checkpoint=demo_checkpoint, prefix='backbone.'))
neck = dict(type='FPN', in_channels=[16, 32, 64, 128], out_channels=64, start_level=1, num_outs=4,
            init_cfg=dict(type='Pretrained', checkpoint=demo_checkpoint, prefix='neck.'))
dino_backbone = dict(backbone, out_indices=(2, 3))  # strides 16 and 32
