"""The gradient CAM family: real gradients, the papers' formulas, every layer path."""
import numpy as np
import pytest
import torch

from mmxai.explainers import (
    ALGORITHMS,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    XGradCAM,
    build_explainer,
)
from mmxai.geometry import resample_cells
from mmxai.models import ExplainModel
from mmxai.utils import UnsupportedModelError
from tests.helpers import (
    CLS_DEMO_CONFIG,
    DET_DEMO_CONFIG,
    build_model,
    cls_batch,
    det_batch,
    load_config,
    random_images,
)

GRADIENT_METHODS = ['gradcam', 'gradcampp', 'xgradcam', 'layercam', 'hirescam']
SIZE = 256  # 8x8 last feature map at stride 32


@pytest.fixture(scope='module')
def resnet():
    return build_model(load_config(CLS_DEMO_CONFIG))


@pytest.fixture(scope='module')
def atss():
    return build_model(load_config(DET_DEMO_CONFIG))


def _raw_maps(model, batch, explainer, targets=None):
    """Captured pass, then the explainer, all under no_grad like the test loop."""
    explain = ExplainModel(model, explainer=explainer)
    with torch.no_grad():
        data = explain.data_preprocessor(batch)
        with explain.adapter.capture():
            samples = model.predict(data['inputs'], data['data_samples'])
        return explain.adapter, explain.explainer(explain.adapter, samples, targets), data


def test_grad_cam_weights_are_the_autograd_gradients(resnet):
    adapter, maps, data = _raw_maps(resnet, cls_batch(random_images(2, SIZE, SIZE)), 'gradcam')
    # Independently: backbone output with grad, the model's own neck and head, autograd.
    with torch.enable_grad():
        features = resnet.backbone(data['inputs'])[-1].detach().requires_grad_()
        logits = resnet.head(resnet.neck((features,)))
        for cls in range(logits.shape[1]):
            gradient, = torch.autograd.grad(logits[:, cls].sum(), features, retain_graph=True)
            weights = gradient.mean(dim=(2, 3), keepdim=True)
            expected = (weights * features).sum(1).relu()
            torch.testing.assert_close(maps[:, cls], expected.detach(), rtol=1e-4, atol=1e-6)
    assert maps.shape == (2, 3, 8, 8) and maps.abs().sum() > 0
    assert not torch.allclose(maps[:, 0], maps[:, 1])  # another class, another map


@pytest.mark.parametrize('explainer, reference', [
    (GradCAM, lambda a, g: (g.mean((2, 3), keepdims=True) * a).sum(1)),
    (XGradCAM, lambda a, g: ((g * a).sum((2, 3), keepdims=True)
                             / (a.sum((2, 3), keepdims=True) + 1e-7) * a).sum(1)),
    (LayerCAM, lambda a, g: (np.maximum(g, 0) * a).sum(1)),
    (HiResCAM, lambda a, g: (g * a).sum(1)),
    (GradCAMPlusPlus, lambda a, g: ((g ** 2 / (2 * g ** 2 + a.sum((2, 3), keepdims=True) * g ** 3)
                                     * np.maximum(g, 0)).sum((2, 3), keepdims=True) * a).sum(1)),
])
def test_each_method_combines_as_its_paper(explainer, reference):
    rng = np.random.default_rng(0)
    activations = rng.random((2, 5, 4, 3))  # post-ReLU activations are non-negative
    gradients = rng.normal(size=(2, 5, 4, 3))
    expected = np.maximum(reference(activations, gradients), 0)
    got = explainer.combine(torch.from_numpy(activations), torch.from_numpy(gradients))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-9)


def test_only_the_classes_to_keep_are_differentiated(resnet):
    batch = cls_batch(random_images(2, SIZE, SIZE))
    _, every_class, _ = _raw_maps(resnet, batch, 'gradcam')
    cls = int(every_class.flatten(2).sum(-1).sum(0).argmax())
    calls = []
    original = torch.autograd.grad

    def counting_grad(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.autograd, 'grad', counting_grad)
        _, maps, _ = _raw_maps(resnet, batch, 'gradcam', targets=[torch.tensor([cls])] * 2)
    assert len(calls) == 1  # one backward pass for the batch's single target class
    others = [c for c in range(maps.shape[1]) if c != cls]
    assert maps[:, others].abs().sum() == 0 and maps[:, cls].abs().sum() > 0
    torch.testing.assert_close(maps[:, cls], every_class[:, cls])


def test_named_layer_equals_the_default_layer(resnet):
    batch = cls_batch(random_images(2, SIZE, SIZE))
    _, default, _ = _raw_maps(resnet, batch, 'gradcam')
    _, named, _ = _raw_maps(resnet, batch, dict(type='GradCAM', target_layer='backbone'))
    torch.testing.assert_close(named, default, rtol=1e-4, atol=1e-6)
    _, earlier, _ = _raw_maps(resnet, batch, dict(type='LayerCAM', target_layer='backbone.layer3'))
    assert earlier.shape == (2, 3, 16, 16)  # stride 16


@pytest.mark.parametrize('algorithm', GRADIENT_METHODS)
def test_detector_maps_per_class_at_the_finest_level(atss, algorithm):
    batch = det_batch(random_images(2, SIZE, SIZE))
    adapter, maps, _ = _raw_maps(atss, batch, algorithm)
    assert maps.shape == (2, 3, 32, 32)  # the stride-8 level
    assert torch.isfinite(maps).all() and (maps >= 0).all()
    explain = ExplainModel(atss, explainer=algorithm, explain_all_classes=True)
    with torch.no_grad():
        samples = explain.test_step(det_batch(random_images(1, SIZE, SIZE)))
    assert samples[0].saliency_map.shape == (3, 32, 32)


def test_detector_levels_are_rectified_and_rescaled_before_their_mean(atss):
    """pytorch-grad-cam's multi-layer rule (``scale_cam_image`` per layer, then the mean),
    written out on the real FPN levels, ATSS head and autograd."""
    adapter, maps, data = _raw_maps(atss, det_batch(random_images(2, SIZE, SIZE, seed=2)),
                                    'gradcam')
    with torch.enable_grad():
        levels = [f.detach().requires_grad_()
                  for f in atss.neck(atss.backbone(data['inputs']))]
        cls_scores = atss.bbox_head(tuple(levels))[0]  # ATSS: one anchor per position
        probabilities = torch.cat([s.sigmoid().flatten(2) for s in cls_scores], dim=2)
        kept = probabilities.detach() >= 0.3  # the class's predicted boxes, else its best
        scores = torch.where(kept.any(-1), (probabilities * kept).sum(-1),
                             probabilities.amax(-1))
        for cls in range(scores.shape[1]):
            gradients = torch.autograd.grad(scores[:, cls].sum(), levels, retain_graph=True)
            per_level = []
            for a, g in zip(levels, gradients):
                cam = (g.mean((2, 3), keepdim=True) * a.detach()).sum(1, keepdim=True).relu()
                low = cam.amin((2, 3), keepdim=True)
                cam = (cam - low) / ((cam - low).amax((2, 3), keepdim=True) + 1e-7)
                per_level.append(resample_cells(cam, (32, 32), adapter.grid_of(cam.shape[-2:]),
                                                adapter.grid_of((32, 32))))
            expected = torch.stack(per_level).mean(0)[:, 0]
            torch.testing.assert_close(maps[:, cls], expected, rtol=1e-4, atol=1e-5)
    assert maps.amin() >= 0 and 0 < maps.amax() <= 1  # a mean of maps in [0, 1]


def test_detector_named_layer_runs_the_network_again(atss):
    batch = det_batch(random_images(1, SIZE, SIZE))
    _, maps, _ = _raw_maps(atss, batch, dict(type='HiResCAM', target_layer='backbone.layer2'))
    assert maps.shape == (1, 3, 32, 32) and maps.abs().sum() > 0


def test_bad_layers_and_models_are_clear_errors(resnet):
    with pytest.raises(UnsupportedModelError, match="no module 'backbone.nope'"):
        _raw_maps(resnet, cls_batch(random_images(1, SIZE, SIZE)),
                  dict(type='GradCAM', target_layer='backbone.nope'))
    for algorithm in GRADIENT_METHODS:
        assert set(ALGORITHMS[algorithm]) == {'detection', 'classification'}
        with pytest.raises(UnsupportedModelError, match='vision_transformer'):
            build_explainer(algorithm, 'vision_transformer')
