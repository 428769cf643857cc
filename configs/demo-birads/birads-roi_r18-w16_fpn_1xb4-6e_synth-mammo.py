# The BI-RADS classifier of boxes from anywhere (BiradsClassifier) on the demo's data, backbone and neck, in the
# families' budget: what `mammo-det birads apply` gives another framework's boxes, against the built-in branches.
_base_ = ['../demo/faster-rcnn_r18-w16_fpn_birads_1xb4-24e_synth-mammo.py', '../demo-families/_base_/demo_backbone.py']
model = dict(_delete_=True, type='BiradsClassifier', data_preprocessor={{_base_.preprocessor}},
             backbone={{_base_.backbone}}, neck={{_base_.neck}}, birads_head=dict(detach_features=False))
train_cfg = {{_base_.family_train_cfg}}
param_scheduler = {{_base_.family_param_scheduler}}
default_hooks = {{_base_.family_hooks}}
