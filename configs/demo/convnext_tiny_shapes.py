# A small ConvNeXt (2-2-2-2 blocks, 16-128 channels) on the synthetic shapes data:
# the demo ResNet's data and schedule (./resnet_tiny_shapes.py) with MMPretrain's
# ConvNeXt backbone, which pools inside itself (gap_before_final_norm), so no neck.
_base_ = './resnet_tiny_shapes.py'

model = dict(
    backbone=dict(_delete_=True, type='ConvNeXt',
                  arch=dict(depths=[2, 2, 2, 2], channels=[16, 32, 64, 128])),
    neck=None,
    head=dict(in_channels=128))
