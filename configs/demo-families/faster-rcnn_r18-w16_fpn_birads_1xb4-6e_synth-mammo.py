# The demo's Faster R-CNN with its BI-RADS classifier (the two-stage family), its RPN and RoI heads learning from
# scratch on the demo model's backbone and neck, in the same budget as the other families.
_base_ = ['../demo/faster-rcnn_r18-w16_fpn_birads_1xb4-24e_synth-mammo.py', './_base_/demo_backbone.py']
model = dict(backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained', checkpoint={{_base_.demo_checkpoint}},
                                         prefix='backbone.')),  # _delete_: the demo's init_cfg is None
             neck=dict(init_cfg={{_base_.neck.init_cfg}}))
train_cfg = {{_base_.family_train_cfg}}
param_scheduler = {{_base_.family_param_scheduler}}
default_hooks = {{_base_.family_hooks}}
