"""tools/export.py, then tools/explain.py on the exported model, as a user runs them."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import MASK_DEMO_CONFIG, REPO, build_model, load_config, write_config

EXPORT = osp.join(REPO, 'tools', 'export.py')
EXPLAIN = osp.join(REPO, 'tools', 'explain.py')


def _run(tool, *args):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, tool, *args], capture_output=True, text=True,
                          env=env, timeout=600)


def _copy_images(folder, root, count):
    names = sorted(n for n in os.listdir(folder) if n.endswith('.png'))[:count]
    os.makedirs(root, exist_ok=True)
    for name in names:
        shutil.copy(osp.join(folder, name), osp.join(root, name))
    return root


def _explain_both(config, checkpoint, exported, inputs, tmp_path, *options):
    """Explain the same images with the checkpoint and with the exported model."""
    outputs = []
    for name, model in (('torch', checkpoint), ('exported', exported)):
        out = str(tmp_path / name)
        result = _run(EXPLAIN, config, model, '--input', inputs, '--output', out,
                      '--device', 'cpu', *options)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append((out, json.load(open(osp.join(out, 'manifest.json')))))
    return outputs


def _assert_same_files(torch_run, exported_run, task):
    (torch_out, torch_manifest), (exported_out, exported_manifest) = torch_run, exported_run
    # One model contract (mmxai.models.SaliencyModel): the same manifest header, class
    # names and score threshold included, but for the model file and the command naming it.
    def header(manifest):
        return {k: v for k, v in manifest.items() if k not in ('images', 'checkpoint', 'command')}
    assert header(exported_manifest) == header(torch_manifest)
    assert torch_manifest['classes'] and torch_manifest['score_thr'] is not None
    assert exported_manifest['num_images'] == torch_manifest['num_images'] > 0
    explanations = 0
    for expected, got in zip(torch_manifest['images'], exported_manifest['images']):
        assert got['rel_path'] == expected['rel_path']
        predictions, reference = got['predictions'], expected['predictions']
        assert predictions['labels'] == reference['labels']
        np.testing.assert_allclose(predictions['scores'], reference['scores'], atol=1e-4)
        if task == 'detection':
            np.testing.assert_allclose(predictions['bboxes'], reference['bboxes'], atol=1e-3)
        assert [e['class_name'] for e in got['explanations']] == \
            [e['class_name'] for e in expected['explanations']]
        for e_expected, e_got in zip(expected['explanations'], got['explanations']):
            keys = ['saliency_map', 'overlay']
            if 'values' in e_expected:  # --save-raw: the method's own values, to 1e-5
                values = np.load(osp.join(torch_out, e_expected['values']))
                np.testing.assert_allclose(np.load(osp.join(exported_out, e_got['values'])),
                                           values, atol=1e-5 * max(1.0, np.abs(values).max()))
                if values.max() - values.min() < 2e-3:
                    # Stretching a nearly flat map to [0, 1] turns float noise into colours.
                    keys = []
            for key in keys:
                assert e_got[key] == e_expected[key]
                a = cv2.imread(osp.join(torch_out, e_expected[key])).astype(int)
                b = cv2.imread(osp.join(exported_out, e_got[key])).astype(int)
                off = np.abs(a - b).max(2) > 1
                if off.any() and 'raw' in e_expected:
                    # A map value on a step of the 256-entry colour table (OpenCV's JET
                    # moves 4 levels a step) may round either way: allowed only where
                    # the drawn maps agree to 1e-5, and on a few pixels.
                    drawn = [np.load(osp.join(out, e['raw'])) for out, e in
                             ((torch_out, e_expected), (exported_out, e_got))]
                    assert off.mean() < 1e-3 and np.abs(a - b).max() <= 4, (key, e_got[key])
                    assert np.abs(drawn[0] - drawn[1])[off].max() < 1e-5, (key, e_got[key])
                else:
                    assert not off.any(), (key, e_got[key])
            explanations += 1
    assert explanations >= torch_manifest['num_images']


def test_detector_openvino_ir_writes_the_pytorch_files(trained_detector, shapes_detection,
                                                       tmp_path):
    config, checkpoint = trained_detector
    result = _run(EXPORT, config, checkpoint, '--output', str(tmp_path / 'export'),
                  '--format', 'openvino')
    assert result.returncode == 0, result.stderr[-3000:]
    exported = str(tmp_path / 'export' / 'cfg.xml')
    assert osp.isfile(exported) and osp.isfile(exported[:-4] + '.bin')
    assert 'saliency_map' in result.stdout and '256, 256' in result.stdout
    inputs = _copy_images(osp.join(shapes_detection, 'val'), str(tmp_path / 'images'), 4)
    torch_run, exported_run = _explain_both(config, checkpoint, exported, inputs, tmp_path,
                                            '--batch-size', '2')
    _assert_same_files(torch_run, exported_run, 'detection')
    assert exported_run[1]['checkpoint'] == exported


def test_classifier_onnx_writes_the_pytorch_files(trained_classifier, shapes_classification,
                                                  tmp_path):
    config, checkpoint = trained_classifier
    # The demo classifier's test pipeline has no resize: the size must be given.
    result = _run(EXPORT, config, checkpoint, '--output', str(tmp_path / 'export'))
    assert result.returncode == 2 and '--input-shape' in result.stderr
    result = _run(EXPORT, config, checkpoint, '--output', str(tmp_path / 'export'),
                  '--input-shape', '256', '256')
    assert result.returncode == 0, result.stderr[-3000:]
    exported = str(tmp_path / 'export' / 'cfg.onnx')
    folder = osp.join(shapes_classification, 'val')
    inputs = str(tmp_path / 'images')
    for name in sorted(os.listdir(folder)):  # val/<class>/<n>.png: two of each class
        _copy_images(osp.join(folder, name), osp.join(inputs, name), 2)
    torch_run, exported_run = _explain_both(config, checkpoint, exported, inputs, tmp_path,
                                            '--save-raw')
    _assert_same_files(torch_run, exported_run, 'classification')


def _error_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 or lines[-1].startswith('export.py: error:'), result.stderr[-3000:]
    assert lines[-1].startswith('export.py: error: ')
    return lines[-1]


@pytest.mark.parametrize('algorithm,reason', [('eigencam', 'eigendecomposition'),
                                              ('gradcam', 'backward pass'),
                                              ('drise', 'masked copies')])
def test_unsupported_algorithm_is_one_line(trained_detector, tmp_path, algorithm, reason):
    config, checkpoint = trained_detector
    result = _run(EXPORT, config, checkpoint, '--output', str(tmp_path),
                  '--explain-algorithm', algorithm)
    assert reason in _error_line(result)
    assert os.listdir(tmp_path) == []  # nothing half-written


def test_mask_rcnn_is_one_line_saying_why(tmp_path):
    cfg = load_config(MASK_DEMO_CONFIG)
    model = build_model(cfg)
    checkpoint = str(tmp_path / 'random.pth')
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    config = write_config(cfg, str(tmp_path / 'mask_rcnn.py'))
    result = _run(EXPORT, config, checkpoint, '--output', str(tmp_path / 'out'))
    line = _error_line(result)
    assert 'MaskRCNN cannot be exported' in line and 'RoIAlign' in line
