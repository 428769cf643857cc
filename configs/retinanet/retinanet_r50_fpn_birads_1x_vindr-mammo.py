# RetinaNet R50-FPN (mmdet's zoo model, unchanged) with BI-RADS (3/4/5) from the neck's features in each box: the
# anchor-based dense detector. Every head's class count comes from the dataset.
_base_ = ['../_base_/datasets/vindr-mammo_detection.py', '../_base_/schedules/schedule_1x.py',
          '../_base_/default_runtime.py']
birads_loss_weight = 0.5  # weight of the BI-RADS cross-entropy next to the box losses

model = dict(type='BiradsDetector', detector='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
             birads_head=dict(loss_birads=dict(type='CrossEntropyLoss', loss_weight=birads_loss_weight)))
optim_wrapper = dict(optimizer=dict(lr=0.01))  # mmdet's RetinaNet lr for 8 x 2 images
