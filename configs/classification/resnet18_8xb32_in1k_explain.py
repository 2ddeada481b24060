# MMPretrain's ResNet-18 with explain mode (Recipro-CAM) in `runner.test()`.
_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'

custom_imports = dict(imports=['mmxai'], allow_failed_imports=False)
custom_hooks = [
    dict(type='mmxai.PrepareExplainHook', explainer='classwisesaliencymap'),
    dict(type='mmxai.ExplainHook'),
]
