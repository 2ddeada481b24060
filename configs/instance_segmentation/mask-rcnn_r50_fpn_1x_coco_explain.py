# MMDetection's Mask R-CNN R-50 FPN with explain mode: `runner.test()` (and
# mmdet's tools/test.py) writes class maps (the mean of each class's soft
# masks) beside its box and mask evaluation. The same three lines turn explain
# mode on in any detector config with an RoI mask head.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmxai'], allow_failed_imports=False)
custom_hooks = [
    dict(type='mmxai.PrepareExplainHook', explainer='classwisesaliencymap'),
    dict(type='mmxai.ExplainHook'),
]
