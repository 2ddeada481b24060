"""Exported models (ONNX Runtime and OpenVINO) predict and explain as PyTorch explain mode does.

The trained demo models give real predictions and maps with a range. The
random ConvNeXt (Recipro-CAM through the layer norm after its pooling) gets
larger head weights than its initialisation; the random DeiT gets a random
head (MMPretrain initialises it to 0, which makes every map flat) and a
sharper last attention, so its maps span a range (~0.2) where min-max
normalisation is well-conditioned (a nearly flat map turns float noise into
large normalised differences and tests nothing).
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmxai.datasets.image_io import read_image
from mmxai.deploy import (
    ExportedExplainModel,
    ExportedModelError,
    export_explain_model,
    export_model,
    open_session,
)
from mmxai.geometry import normalize_per_map
from mmxai.models import ExplainModel, model_config
from mmxai.models import build_model as build_trained_model
from tests.helpers import CONFIGS, build_model, cls_batch, det_batch, load_config, random_images

#: Runtime -> the export format it is tested on (ONNX Runtime on .onnx, OpenVINO on IR).
RUNTIMES = {'onnxruntime': 'onnx', 'openvino': 'openvino'}
SIZE = 256  # the demo models' input size
VIT_SIZE = 128  # 8 x 8 patches of 16 px


def _assert_maps_equal(expected, got):
    """Raw values to 1e-5 (relative to the largest), and to 1e-4 after min-max normalisation
    for every map with a range (normalising a flat map turns float noise into anything)."""
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5 * max(1.0, float(expected.abs().max())),
                               rtol=0)
    span = expected.flatten(1).amax(1) - expected.flatten(1).amin(1)
    ranged = span > 2e-3
    assert ranged.any(), 'no map with a range: the comparison would test nothing'
    difference = (normalize_per_map(got) - normalize_per_map(expected))[ranged]
    assert difference.abs().max() <= 1e-4


def _assert_same_samples(expected, got, task):
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        if task == 'detection':
            assert torch.equal(g.pred_instances.labels, e.pred_instances.labels)
            torch.testing.assert_close(g.pred_instances.bboxes, e.pred_instances.bboxes,
                                       atol=1e-3, rtol=0)
            torch.testing.assert_close(g.pred_instances.scores, e.pred_instances.scores,
                                       atol=1e-4, rtol=0)
        else:
            assert torch.equal(g.pred_label, e.pred_label)
            torch.testing.assert_close(g.pred_score, e.pred_score, atol=1e-5, rtol=0)
        assert torch.equal(g.explained_classes, e.explained_classes)
        for key in ('explain_algorithm', 'explain_input_shape', 'explain_cell_grid',
                    'explain_value_range', 'explained_class_names'):
            assert g.metainfo[key] == e.metainfo[key], key
        _assert_maps_equal(e.saliency_map, g.saliency_map)


def _export_both(model, tmp_path_factory, name, algorithm, size, classes=None):
    out = str(tmp_path_factory.mktemp(name))
    return {runtime: export_explain_model(model, out, fmt, algorithm, (size, size), classes,
                                          name=name)
            for runtime, fmt in RUNTIMES.items()}


CASES = ['resnet-classwisesaliencymap', 'resnet-activationmap', 'deit-classwisesaliencymap',
         'convnext-classwisesaliencymap', 'atss-classwisesaliencymap', 'atss-activationmap']


@pytest.fixture(scope='module', params=CASES)
def exported(request, tmp_path_factory):
    """(config, PyTorch model, algorithm, input size, {runtime: file}, class names) per case."""
    family, algorithm = request.param.split('-')
    if family == 'deit':
        cfg = load_config('mmpretrain::deit/deit-tiny_4xb256_in1k.py')
        cfg.model.backbone.update(arch=dict(embed_dims=64, num_layers=2, num_heads=4,
                                            feedforward_channels=128), img_size=VIT_SIZE)
        cfg.model.head.update(num_classes=3, in_channels=64)
        cfg.model.train_cfg = None
        model, classes, size = build_model(cfg), None, VIT_SIZE
        torch.manual_seed(0)  # the head is initialised to 0: every map would be flat
        with torch.no_grad():
            torch.nn.init.normal_(model.head.layers.head.weight, std=1.0)
            # Trained attention is far from uniform; at init the patches barely count.
            model.backbone.layers[-1].attn.qkv.weight.mul_(3)
            model.backbone.layers[-1].attn.proj.weight.mul_(10)
    elif family == 'convnext':  # pools inside its backbone, then its final layer norm
        cfg = load_config(osp.join(CONFIGS, 'demo', 'convnext_tiny_shapes.py'))
        model, classes, size = build_model(cfg), list(cfg.metainfo['classes']), SIZE
        torch.manual_seed(0)
        with torch.no_grad():  # the head is initialised with std 0.01: nearly flat maps
            torch.nn.init.normal_(model.head.fc.weight, std=1.0)
    else:
        trained = 'trained_classifier' if family == 'resnet' else 'trained_detector'
        config, checkpoint = request.getfixturevalue(trained)
        cfg = Config.fromfile(config)
        model = build_trained_model(cfg, checkpoint)
        classes = model.dataset_meta.get('classes')
        model, size = model.eval(), SIZE
    files = _export_both(model, tmp_path_factory, request.param, algorithm, size, classes)
    return cfg, model, algorithm, size, files, classes


@pytest.mark.parametrize('runtime', RUNTIMES)
@pytest.mark.parametrize('batch', [1, 3])  # traced at 2: the batch axis is dynamic
def test_exported_equals_pytorch_explain_mode(exported, runtime, batch, request):
    cfg, model, algorithm, size, files, classes = exported
    task = 'detection' if 'bbox_head' in cfg.model else 'classification'
    images = random_images(batch, size, size, seed=batch)
    if size == SIZE:  # trained models: their own held-out images (real objects, real boxes)
        root = request.getfixturevalue('shapes_detection' if task == 'detection'
                                       else 'shapes_classification')
        images = [read_image(p) for p in sorted(glob.glob(f'{root}/val/**/*.png',
                                                          recursive=True))[:batch]]
    make_batch = det_batch if task == 'detection' else cls_batch
    with torch.no_grad():
        expected = ExplainModel(model, explainer=algorithm, explain_all_classes=True,
                                class_names=classes).test_step(make_batch(images))
    got = ExportedExplainModel(files[runtime], model_config(cfg), explain_all_classes=True
                               ).test_step(make_batch(images))
    _assert_same_samples(expected, got, task)
    if task == 'detection':
        assert sum(len(s.pred_instances) for s in expected) > 0


def test_predicted_classes_are_explained_by_default(exported):
    cfg, model, algorithm, size, files, classes = exported
    task = 'detection' if 'bbox_head' in cfg.model else 'classification'
    make_batch = det_batch if task == 'detection' else cls_batch
    images = random_images(2, size, size, seed=5)
    with torch.no_grad():
        expected = ExplainModel(model, explainer=algorithm, score_thr=0.0, class_names=classes
                                ).test_step(make_batch(images))
    got = ExportedExplainModel(files['onnxruntime'], model_config(cfg), score_thr=0.0
                               ).test_step(make_batch(images))
    for e, g in zip(expected, got):
        assert torch.equal(g.explained_classes, e.explained_classes)
        assert g.saliency_map.shape == e.saliency_map.shape


def test_saliency_output_is_the_raw_per_class_map(exported):
    """The graph's own output: (B, K or 1, h, w) at feature resolution, not normalised."""
    cfg, model, algorithm, size, files, classes = exported
    session = open_session(files['onnxruntime'])
    meta = session.metadata
    outputs = session(torch.randn(2, 3, size, size).numpy())
    maps = outputs['saliency_map']
    assert maps.shape[0] == 2 and maps.shape[1] == (meta.num_classes if meta.class_wise else 1)
    assert maps.shape[2] < size // 4
    if algorithm == 'classwisesaliencymap':  # probabilities (softmax / sigmoid), not [0, 1]-scaled
        assert maps.min() > 0 and maps.max() < 1
    assert meta.outputs[-1] == 'saliency_map' and set(meta.outputs) == set(outputs)


def test_input_larger_than_exported_is_one_clear_error(exported):
    cfg, model, algorithm, size, files, classes = exported
    task = 'detection' if 'bbox_head' in cfg.model else 'classification'
    make_batch = det_batch if task == 'detection' else cls_batch
    model = ExportedExplainModel(files['onnxruntime'], model_config(cfg))
    with pytest.raises(ExportedModelError, match='larger than the'):
        model.test_step(make_batch(random_images(1, size + 32, size)))


def test_export_from_config_and_checkpoint_names_the_file(trained_classifier, tmp_path):
    config, checkpoint = trained_classifier
    path = export_model(config, checkpoint, str(tmp_path), 'onnx', input_shape=(SIZE, SIZE))
    assert path == str(tmp_path / 'cfg.onnx')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cfg.onnx']  # no temporary left
    assert open_session(path).metadata.class_names == ['red_square', 'green_circle',
                                                       'blue_triangle']
