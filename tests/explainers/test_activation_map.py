"""ActivationMap (and EigenCAM's sign rule): one rule per model, never per batch."""
import numpy as np
import pytest
import torch

from mmxai.explainers.activation_map import activation_strength
from mmxai.geometry import merge_levels
from mmxai.models import ExplainModel
from tests.helpers import (
    CLS_DEMO_CONFIG,
    DET_DEMO_CONFIG,
    build_model,
    cls_batch,
    det_batch,
    load_config,
    random_images,
)

SIZE = 128



def test_activation_is_the_mean_after_a_non_negative_activation_else_the_norm():
    features = torch.rand(2, 5, 3, 4)
    torch.testing.assert_close(activation_strength(features, True),
                               features.mean(1, keepdim=True))
    torch.testing.assert_close(activation_strength(features, False),
                               features.norm(dim=1, keepdim=True))
    signed = features - 0.5
    # The sign of signed features does not flip the map.
    torch.testing.assert_close(activation_strength(-signed, False),
                               activation_strength(signed, False))


def _explained(model, batch, algorithm='activationmap'):
    explain = ExplainModel(model, explainer=algorithm)
    with torch.no_grad():
        samples = explain.test_step(batch)
    return explain.adapter, torch.stack([s.saliency_map for s in samples])


def _mobilenet(version):
    config = {2: 'mmpretrain::mobilenet_v2/mobilenet-v2_8xb32_in1k.py',
              3: 'mmpretrain::mobilenet_v3/mobilenet-v3-small_8xb128_in1k.py'}[version]
    cfg = load_config(config)
    if version == 2:
        cfg.model.backbone.widen_factor = 0.25
        cfg.model.head.in_channels = 1280
    cfg.model.head.num_classes = 3
    cfg.model.train_cfg = None
    return build_model(cfg)


@pytest.mark.parametrize('build, batch, non_negative', [
    (lambda: build_model(load_config(CLS_DEMO_CONFIG)), cls_batch, True),  # ResNet: ReLU
    (lambda: _mobilenet(2), cls_batch, True),  # last ConvModule: ReLU6
    (lambda: _mobilenet(3), cls_batch, False),  # last ConvModule: Hardswish
    (lambda: build_model(load_config(DET_DEMO_CONFIG)), det_batch, False),  # FPN: convolutions
])
def test_the_rule_is_read_from_the_layer_that_made_the_features(build, batch, non_negative):
    model = build()
    adapter, maps = _explained(model, batch(random_images(2, SIZE, SIZE)))
    assert adapter.features_non_negative is non_negative
    # The published rule per level (mean of non-negative features, else the L2 norm over
    # channels), levels merged as every pyramid method's are.
    levels = [f.mean(1, keepdim=True) if non_negative else f.norm(dim=1, keepdim=True)
              for f in adapter.feature_maps()]
    expected = levels[0] if len(levels) == 1 else \
        merge_levels(levels, adapter.level_grids())[0]
    torch.testing.assert_close(maps, expected)


def _atss_with_raised_fpn_biases(calm_image):
    """The demo ATSS (random weights) whose FPN outputs are all positive on ``calm_image``:
    each level's output bias is raised, level by level (later levels read earlier ones),
    until that image's features are above zero."""
    atss = build_model(load_config(DET_DEMO_CONFIG))
    explain = ExplainModel(atss, explainer='activationmap')
    for level, conv in enumerate(atss.neck.fpn_convs):
        with torch.no_grad():
            explain.test_step(det_batch([calm_image]))
            lowest = explain.adapter.feature_maps()[level].amin()
            conv.conv.bias.data += 0.05 - lowest
    return atss


@pytest.mark.parametrize('algorithm', ['activationmap', 'eigencam'])
def test_an_images_map_does_not_depend_on_its_batch_mates(algorithm):
    calm = np.full((SIZE, SIZE, 3), 128, np.uint8)
    busy = random_images(1, SIZE, SIZE, seed=7)[0]
    atss = _atss_with_raised_fpn_biases(calm)
    _, alone = _explained(atss, det_batch([calm]), algorithm)
    adapter, in_pair = _explained(atss, det_batch([calm, busy]), algorithm)
    # Where a per-batch rule flips: the calm image's features are all positive, the busy
    # image's are not.
    features = adapter.feature_maps()
    assert all(bool((f[0] > 0).all()) for f in features)
    assert any(bool((f[1] < 0).any()) for f in features)
    torch.testing.assert_close(alone[0], in_pair[0], rtol=1e-4, atol=1e-5)
    # FPN outputs come from a convolution: the L2 norm, whatever the batch holds.
    if algorithm == 'activationmap':
        with torch.no_grad():
            levels = atss.neck(atss.backbone(atss.data_preprocessor(
                det_batch([calm]))['inputs']))
        expected = merge_levels([level.norm(dim=1, keepdim=True) for level in levels],
                                adapter.level_grids())[0]
        torch.testing.assert_close(alone, expected, rtol=1e-4, atol=1e-5)
