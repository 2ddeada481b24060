"""Classifier maps' cells sit where the backbone's strided layers centre them.

The reference is the receptive field itself: the input pixels whose
gradient reaches one interior cell of the feature map (the union over a few
random inputs and the map's channels) span a window, and the cell belongs at
that window's centre. MMPretrain's own backbones, random weights, inputs
large enough for the window to lie inside the image.
"""
import pytest
import torch
from mmpretrain.registry import MODELS

from mmxai.adapters.classifier import ClassifierAdapter
from mmxai.geometry import CellGrid

BACKBONES = {
    # Padded 3x3 stride-2 convolutions and pooling: a cell sits on pixel 32 k.
    'ResNet': dict(type='ResNet', depth=18, stem_channels=8, base_channels=8),
    # TensorFlow "same" padding (MMCV's Conv2dAdaptivePadding, as in MMPretrain's
    # EfficientNet configs) pads after the input: each stride-2 window starts on
    # a cell and ends past it, so cell k sits near pixel 32 k + 31. (MobileNet
    # v2: EfficientNet's squeeze-excitation would make every window global.)
    'TF padding': dict(type='MobileNetV2', widen_factor=0.25,
                       conv_cfg=dict(type='Conv2dAdaptivePadding')),
    # Non-overlapping 4x4 and 2x2 windows: the centre of a 32-pixel block.
    'ConvNeXt': dict(type='ConvNeXt', arch=dict(depths=[1, 1, 1, 1], channels=[8, 8, 16, 16])),
    # 2x2 max pooling after padded 3x3 convolutions: also a block's centre.
    'VGG': dict(type='VGG', depth=11, out_indices=(4, )),
    # 2x2 average-pooling transitions: half a block, plus the stem's 0.
    'DenseNet': dict(type='DenseNet', arch=dict(growth_rate=4, depths=(1, 1, 1, 1),
                                                init_channels=8)),
}


def _receptive_window_centre(backbone, adapter, size, cell):
    """(y, x) centre, in pixels (continuous, pixel p spans [p, p + 1)), of the input
    window that reaches ``cell`` of the feature map."""
    reached = torch.zeros(size, size, dtype=torch.bool)
    for seed in range(3):
        torch.manual_seed(seed)
        inputs = torch.randn(1, 3, size, size, requires_grad=True)
        with adapter.capture():
            backbone(inputs)
        features = adapter.feature_maps()[0]
        features[0, :, cell[0], cell[1]].sum().backward()
        reached |= inputs.grad[0].abs().sum(0) > 0
    rows = reached.any(1).nonzero()[:, 0]
    cols = reached.any(0).nonzero()[:, 0]
    assert 0 < rows[0] and rows[-1] < size - 1 and 0 < cols[0] and cols[-1] < size - 1, \
        'the window must lie inside the input'
    return (rows[0] + rows[-1] + 1).item() / 2, (cols[0] + cols[-1] + 1).item() / 2


@pytest.mark.parametrize('name', list(BACKBONES))
def test_cells_sit_at_the_centre_of_their_receptive_window(name):
    model = MODELS.build(dict(type='ImageClassifier', backbone=BACKBONES[name],
                              neck=dict(type='GlobalAveragePooling'),
                              head=dict(type='LinearClsHead', num_classes=2, in_channels=8)))
    backbone = model.eval().backbone
    adapter = ClassifierAdapter(model)
    size = {'ResNet': 768, 'TF padding': 768, 'ConvNeXt': 512}.get(name, 256)
    with torch.no_grad(), adapter.capture():
        backbone(torch.zeros(1, 3, size, size))
    height, width = adapter.feature_maps()[0].shape[-2:]
    cell = (height // 2, width // 2 - 1)
    grid = CellGrid(*adapter.level_grids()[0])
    expected_y, expected_x = _receptive_window_centre(backbone, adapter, size, cell)
    assert grid.stride_y == grid.stride_x == 32
    assert grid.origin_y + cell[0] * grid.stride_y == pytest.approx(expected_y, abs=1)
    assert grid.origin_x + cell[1] * grid.stride_x == pytest.approx(expected_x, abs=1)


def test_swin_cells_sit_at_the_centre_of_their_patches():
    # Window attention mixes whole windows, so no small receptive window: its
    # patches are non-overlapping 4x4 windows merged 2x2, a 32-pixel block each.
    model = MODELS.build(dict(
        type='ImageClassifier', neck=dict(type='GlobalAveragePooling'),
        backbone=dict(type='SwinTransformer', img_size=224,
                      arch=dict(embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1])),
        head=dict(type='LinearClsHead', num_classes=2, in_channels=64)))
    adapter = ClassifierAdapter(model)
    with torch.no_grad(), adapter.capture():
        model.backbone(torch.zeros(1, 3, 224, 224))
    assert tuple(adapter.level_grids()[0]) == (32, 32, 16, 16)
