"""The Python API: in-process, nothing written, same maps as the tool's files."""
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import torch
from mmengine.config import Config

from mmxai.apis import SaliencyExplainer
from tests.helpers import REPO, build_model


def _tool_raw_maps(config, checkpoint, image, out):
    result = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'explain.py'), config, checkpoint, '--input',
         image, '--output', out, '--save-raw', '--explain-all-classes', '--device', 'cpu'],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    stem = osp.splitext(osp.basename(image))[0]
    return [np.load(osp.join(out, stem, f'{index}_{name}_saliency.npy'))
            for index, name in enumerate(('red_square', 'green_circle', 'blue_triangle'))]


def test_api_maps_equal_the_tools_raw_files(trained_detector, shapes_detection, tmp_path,
                                            monkeypatch):
    config, checkpoint = trained_detector
    image = osp.join(shapes_detection, 'val', sorted(os.listdir(
        osp.join(shapes_detection, 'val')))[0])
    expected = _tool_raw_maps(config, checkpoint, image, str(tmp_path / 'tool'))
    workdir = tmp_path / 'api'
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    explainer = SaliencyExplainer(config, checkpoint, explain_all_classes=True)
    # One image per call, as the tool ran it: batch size changes float rounding.
    from_path, = explainer([image])
    from_array, = explainer([cv2.imread(image)])
    assert list(workdir.iterdir()) == []  # nothing written
    assert from_path['maps'].shape == (3, 256, 256) and from_path['classes'].tolist() == [0, 1, 2]
    assert from_path['class_names'] == ['red_square', 'green_circle', 'blue_triangle']
    for index in range(3):
        np.testing.assert_allclose(from_path['maps'][index], expected[index], atol=1e-6)
        np.testing.assert_allclose(from_array['maps'][index], expected[index], atol=1e-6)
    assert from_path['predictions']['labels'] == from_array['predictions']['labels']


def test_api_builds_a_classifier_as_the_runner_does(tmp_path, shapes_classification):
    # MMPretrain configs keep mean/std in a top-level data_preprocessor that the
    # Runner merges into the model: the API must see normalised pixels too.
    config = tmp_path / 'resnet18_three_classes.py'
    config.write_text("_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'\n"
                      "model = dict(head=dict(num_classes=3))\n")
    model = build_model(Config.fromfile(str(config)))
    np.testing.assert_allclose(model.data_preprocessor.mean.flatten().tolist(),
                               [123.675, 116.28, 103.53], rtol=1e-6)
    checkpoint = str(tmp_path / 'random.pth')
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': ['a', 'b', 'c']}}}, checkpoint)
    folder = osp.join(shapes_classification, 'val', 'red_square')
    image = osp.join(folder, sorted(f for f in os.listdir(folder) if f.endswith('.png'))[0])
    out = str(tmp_path / 'tool')
    result = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'explain.py'), str(config), checkpoint,
         '--input', image, '--output', out, '--save-raw', '--explain-all-classes',
         '--device', 'cpu'],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    entry, = json.load(open(osp.join(out, 'manifest.json')))['images']
    explained, = SaliencyExplainer(str(config), checkpoint, explain_all_classes=True)([image])
    np.testing.assert_allclose(explained['predictions']['scores'],
                               entry['predictions']['scores'], atol=1e-5)
    for index, explanation in enumerate(entry['explanations']):
        np.testing.assert_allclose(explained['maps'][index],
                                   np.load(osp.join(out, explanation['raw'])), atol=1e-5)


def test_one_channel_model_reads_images_in_grayscale(tmp_path, shapes_classification):
    # MNIST's configs: one-channel mean and std, and a test pipeline that loads
    # nothing (the data set holds arrays). Files and arrays are read in grayscale.
    config = tmp_path / 'resnet18_gray.py'
    config.write_text(
        "_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'\n"
        "model = dict(backbone=dict(in_channels=1, depth=18, base_channels=16, "
        "stem_channels=16), head=dict(num_classes=3, in_channels=128))\n"
        "data_preprocessor = dict(mean=[120.0], std=[60.0], to_rgb=False)\n"
        "test_dataloader = dict(dataset=dict(pipeline=[dict(type='PackInputs')]))\n")
    cfg = Config.fromfile(str(config))
    model = build_model(cfg)
    checkpoint = str(tmp_path / 'random.pth')
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': ['a', 'b', 'c']}}}, checkpoint)
    folder = osp.join(shapes_classification, 'val', 'red_square')
    path = osp.join(folder, sorted(f for f in os.listdir(folder) if f.endswith('.png'))[0])
    color = cv2.imread(path)
    from_file, from_array = SaliencyExplainer(cfg, checkpoint, explain_all_classes=True)(
        [path, color])
    # Each read as OpenCV does: a file with IMREAD_GRAYSCALE (MMCV's 'grayscale'
    # flag), an array with BGR2GRAY (they differ by one grey level here and there).
    grays = (cv2.imread(path, cv2.IMREAD_GRAYSCALE), cv2.cvtColor(color, cv2.COLOR_BGR2GRAY))
    for result, gray in zip((from_file, from_array), grays):
        inputs = (torch.from_numpy(gray).float()[None, None] - 120.0) / 60.0
        with torch.no_grad():
            expected = model(inputs, mode='predict')[0].pred_score
        np.testing.assert_allclose(result['predictions']['scores'], expected.numpy(), atol=1e-6)
        assert result['maps'].shape == (3, *color.shape[:2])
        assert (result['maps'].max(axis=(1, 2)) > result['maps'].min(axis=(1, 2))).all()
