import os.path as osp
from unittest import mock

import pytest
import torch

from mmxai.adapters import ClassifierAdapter
from mmxai.explainers import ReciproCAM
from mmxai.explainers.recipro_cam import spatial_mosaics
from mmxai.models import ExplainModel
from mmxai.utils import UnsupportedModelError
from tests.helpers import (
    CLS_DEMO_CONFIG,
    CONFIGS,
    build_model,
    cls_batch,
    load_config,
    random_images,
)

SIZE = 256  # 8x8 feature map at stride 32


@pytest.fixture(scope='module')
def resnet():
    return build_model(load_config(CLS_DEMO_CONFIG))


def _explain(model, images, algorithm='classwisesaliencymap', **kwargs):
    explain = ExplainModel(model, explainer=algorithm, **kwargs)
    samples = explain.test_step(cls_batch(images))
    return explain, samples


def _explicit_mosaic_maps(model, features):
    """Reference: every mosaic through the model's own neck and head."""
    mosaics = spatial_mosaics(features)
    logits = model.head(model.neck((mosaics,)))
    batch, _, height, width = features.shape
    return logits.softmax(1).reshape(batch, height, width, -1).permute(0, 3, 1, 2)


def test_mosaics_keep_exactly_one_position():
    features = torch.randn(2, 3, 4, 5)
    mosaics = spatial_mosaics(features).reshape(2, 20, 3, 4, 5)
    i, j = 2, 3
    kept = mosaics[:, i * 5 + j]
    torch.testing.assert_close(kept[:, :, i, j], features[:, :, i, j])
    kept[:, :, i, j] = 0
    assert kept.abs().sum() == 0


def test_gap_shortcut_equals_explicit_mosaics(resnet):
    images = random_images(2, SIZE, SIZE)
    explain, samples = _explain(resnet, images, explain_all_classes=True)
    assert explain.adapter.pools_to_vectors
    maps = torch.stack([s.saliency_map for s in samples])
    features = explain.adapter.feature_maps()[-1]
    assert features.shape[-2:] == (8, 8)
    with torch.no_grad():
        reference = _explicit_mosaic_maps(resnet, features)
    torch.testing.assert_close(maps, reference, rtol=1e-4, atol=1e-6)


def test_non_gap_neck_takes_the_explicit_path():
    cfg = load_config(CLS_DEMO_CONFIG)
    cfg.model.neck = dict(type='GeneralizedMeanPooling')
    model = build_model(cfg)
    adapter = ClassifierAdapter(model)
    assert not adapter.pools_to_vectors
    with mock.patch.object(ClassifierAdapter, 'scores_from_feature_maps',
                           autospec=True, side_effect=ClassifierAdapter.scores_from_feature_maps) \
            as explicit:
        _, samples = _explain(model, random_images(1, SIZE, SIZE), explain_all_classes=True)
    assert explicit.call_count == 1
    assert samples[0].saliency_map.shape == (3, 8, 8)


def test_norm_after_pooling_uses_each_images_own_statistics():
    """ConvNeXt pools, then applies a layer norm. Position (i, j)'s share of image b's
    pooled vector, F[b, :, i, j] / (h w), is normalised with the mean and variance of that
    pooled vector (the affine map the norm applied to image b), then scored by the head."""
    model = build_model(load_config(osp.join(CONFIGS, 'demo', 'convnext_tiny_shapes.py')))
    images = random_images(2, SIZE, SIZE, seed=7)
    explain, samples = _explain(model, images, explain_all_classes=True)
    maps = torch.stack([s.saliency_map for s in samples])
    features = explain.adapter.feature_maps()[-1]
    batch, _, height, width = features.shape
    norm = model.backbone.norm3
    reference = torch.empty_like(maps)
    with torch.no_grad():
        for b in range(batch):
            whole = features[b].mean((1, 2))
            mean, variance = whole.mean(), ((whole - whole.mean()) ** 2).mean()
            for i in range(height):
                for j in range(width):
                    share = features[b, :, i, j] / (height * width)
                    normalised = (share - mean) / torch.sqrt(variance + norm.eps)
                    logits = model.head.fc(normalised * norm.weight + norm.bias)
                    reference[b, :, i, j] = logits.softmax(0)
    torch.testing.assert_close(maps, reference, rtol=1e-4, atol=1e-6)
    alone = _explain(model, images[1:], explain_all_classes=True)[1][0].saliency_map
    torch.testing.assert_close(alone, maps[1], rtol=1e-4, atol=1e-6)


def test_scores_are_class_probabilities_and_batch_consistent(resnet):
    images = random_images(3, SIZE, SIZE, seed=5)
    _, samples = _explain(resnet, images, explain_all_classes=True)
    maps = torch.stack([s.saliency_map for s in samples])
    assert maps.shape == (3, 3, 8, 8)
    torch.testing.assert_close(maps.sum(1), torch.ones(3, 8, 8))
    single = torch.stack([_explain(resnet, [image], explain_all_classes=True)[1][0].saliency_map
                          for image in images])
    torch.testing.assert_close(maps, single, rtol=1e-4, atol=1e-6)


def test_default_target_is_the_predicted_class(resnet):
    _, samples = _explain(resnet, random_images(2, SIZE, SIZE, seed=2))
    for sample in samples:
        assert sample.explained_classes.tolist() == sample.pred_label.tolist()
        assert sample.saliency_map.shape == (1, 8, 8)


def test_class_agnostic_methods_on_classifier(resnet):
    images = random_images(2, SIZE, SIZE, seed=3)
    explain, samples = _explain(resnet, images, 'activationmap')
    features = explain.adapter.feature_maps()[-1]
    maps = torch.stack([s.saliency_map for s in samples])
    torch.testing.assert_close(maps, features.mean(1, keepdim=True))
    _, samples = _explain(resnet, images, 'eigencam')
    assert samples[0].saliency_map.shape == (1, 8, 8)


def test_recipro_cam_refuses_detectors():
    from tests.helpers import DET_DEMO_CONFIG
    detector = build_model(load_config(DET_DEMO_CONFIG))
    with pytest.raises(UnsupportedModelError, match='classification'):
        ExplainModel(detector, explainer=ReciproCAM())


def test_multi_label_head_uses_sigmoid_and_predicted_labels():
    cfg = load_config(CLS_DEMO_CONFIG)
    cfg.model.head = dict(type='MultiLabelLinearClsHead', num_classes=3, in_channels=128,
                          thr=0.3)
    model = build_model(cfg)
    explain, samples = _explain(model, random_images(2, SIZE, SIZE, seed=9),
                                explain_all_classes=True)
    assert explain.adapter.multi_label
    maps = torch.stack([s.saliency_map for s in samples])
    features = explain.adapter.feature_maps()[-1]
    pooled = features.flatten(2).transpose(1, 2) / 64
    expected = model.head.fc(pooled).sigmoid().permute(0, 2, 1).reshape(2, 3, 8, 8)
    torch.testing.assert_close(maps, expected)
    _, samples = _explain(model, random_images(2, SIZE, SIZE, seed=9))
    for sample in samples:
        assert sample.explained_classes.tolist() == sample.pred_label.tolist()
