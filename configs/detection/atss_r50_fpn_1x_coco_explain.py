# MMDetection's ATSS R-50 FPN with explain mode: `runner.test()` (and mmdet's
# tools/test.py) writes class-wise saliency maps beside its evaluation. The same
# three lines turn explain mode on in any single-stage detector config.
_base_ = 'mmdet::atss/atss_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmxai'], allow_failed_imports=False)
custom_hooks = [
    dict(type='mmxai.PrepareExplainHook', explainer='classwisesaliencymap'),
    dict(type='mmxai.ExplainHook'),
]
