# DINO (the DETR family) on the demo's data and backbone, its BI-RADS from BiradsDetector's box classifier, as every
# family but R-CNN: a small DINO (one encoder layer, two decoder layers, the demo backbone's strides 16 and 32) that
# learns in a few CPU epochs. DINO's decoder encodes box coordinates in 128 features per coordinate, so its width
# stays 256.
_base_ = ['../demo/faster-rcnn_r18-w16_fpn_birads_1xb4-24e_synth-mammo.py', './_base_/demo_backbone.py']
model = dict(
    _delete_=True, type='BiradsDetector', data_preprocessor={{_base_.preprocessor}},
    detector=dict(
        type='DINO', num_queries=100, with_box_refine=True, as_two_stage=True, backbone={{_base_.dino_backbone}},
        neck=dict(type='ChannelMapper', in_channels=[64, 128], kernel_size=1, out_channels=256, act_cfg=None,
                  norm_cfg=dict(type='GN', num_groups=32), num_outs=2),
        encoder=dict(num_layers=1, layer_cfg=dict(self_attn_cfg=dict(embed_dims=256, num_levels=2, dropout=0.0),
                                                  ffn_cfg=dict(embed_dims=256, feedforward_channels=512,
                                                               ffn_drop=0.0))),
        decoder=dict(num_layers=2, return_intermediate=True, post_norm_cfg=None,
                     layer_cfg=dict(self_attn_cfg=dict(embed_dims=256, num_heads=8, dropout=0.0),
                                    cross_attn_cfg=dict(embed_dims=256, num_levels=2, dropout=0.0),
                                    ffn_cfg=dict(embed_dims=256, feedforward_channels=512, ffn_drop=0.0))),
        positional_encoding=dict(num_feats=128, normalize=True, offset=0.0, temperature=20),
        bbox_head=dict(type='DINOHead', num_classes=2, embed_dims=256, sync_cls_avg_factor=True,
                       loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
                       loss_bbox=dict(type='L1Loss', loss_weight=5.0),
                       loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
        dn_cfg=dict(label_noise_scale=0.5, box_noise_scale=1.0,
                    group_cfg=dict(dynamic=True, num_groups=None, num_dn_queries=20)),
        train_cfg=dict(assigner=dict(type='HungarianAssigner', match_costs=[
            dict(type='FocalLossCost', weight=2.0), dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
            dict(type='IoUCost', iou_mode='giou', weight=2.0)])),
        test_cfg=dict(max_per_img=50)))
optim_wrapper = dict(optimizer=dict(lr=3e-4))
train_cfg = {{_base_.family_train_cfg}}
param_scheduler = {{_base_.family_param_scheduler}}
default_hooks = {{_base_.family_hooks}}
