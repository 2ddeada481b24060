"""tools/explain.py end to end, in a subprocess, as a user runs it."""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.helpers import REPO, check_ceiling

TOOL = osp.join(REPO, 'tools', 'explain.py')


def _run(*args, cwd=None, env=None, umask=-1):
    extra = dict(env or {})
    paths = [REPO] + ([extra.pop('PYTHONPATH')] if 'PYTHONPATH' in extra else [])
    env = dict(os.environ, **extra, PYTHONPATH=os.pathsep.join(paths))
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600, umask=umask)


def _full_log(result) -> str:
    """The log file a run names on its last line (``full log: PATH``)."""
    last = result.stdout.rstrip('\n').split('\n')[-1]
    assert last.startswith('full log: '), result.stdout[-2000:]
    return open(last[len('full log: '):], encoding='utf-8').read()


def _nested_inputs(source_images, root):
    """Copy images into root/ and root/sub/deeper/, same names in both."""
    for index, src in enumerate(source_images):
        for folder in ('', osp.join('sub', 'deeper')):
            os.makedirs(osp.join(root, folder), exist_ok=True)
            shutil.copy(src, osp.join(root, folder, f'img{index}.png'))
    return root


def _check_outputs(out, expect_images, class_wise=True):
    manifest = json.loads(open(osp.join(out, 'manifest.json')).read())
    assert manifest['num_images'] == expect_images
    assert 'explain.py' in manifest['command']
    rel_paths = {entry['rel_path'] for entry in manifest['images']}
    assert len(rel_paths) == expect_images  # equal names in subfolders kept apart
    explained = 0
    for entry in manifest['images']:
        original = cv2.imread(entry['image'])
        for explanation in entry['explanations']:
            saliency = cv2.imread(osp.join(out, explanation['saliency_map']))
            overlay = cv2.imread(osp.join(out, explanation['overlay']))
            assert saliency.shape == overlay.shape == original.shape
            raw = np.load(osp.join(out, explanation['raw']))
            assert raw.dtype == np.float32 and raw.shape == original.shape[:2]
            assert 0 <= raw.min() and raw.max() <= 1
            assert (explanation['class_index'] is not None) == class_wise
            explained += 1
    assert explained >= expect_images
    return manifest


def test_detector_on_nested_folder(trained_detector, shapes_detection, tmp_path):
    config, checkpoint = trained_detector
    sources = sorted(os.listdir(osp.join(shapes_detection, 'val')))[:3]
    inputs = _nested_inputs([osp.join(shapes_detection, 'val', s) for s in sources],
                            str(tmp_path / 'in'))
    out = str(tmp_path / 'out')
    result = _run(config, checkpoint, '--input', inputs, '--output', out, '--save-raw',
                  '--explain-all-classes', '--device', 'cpu')
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = _check_outputs(out, 6)
    entry = manifest['images'][0]
    assert {'bboxes', 'labels', 'scores'} <= set(entry['predictions'])
    assert len(entry['explanations']) == 3
    assert osp.exists(osp.join(out, 'sub', 'deeper', 'img0', '0_red_square_saliency.png'))


@pytest.mark.parametrize('algorithm', ['activationmap', 'eigencam'])
def test_detector_class_agnostic(trained_detector, shapes_detection, tmp_path, algorithm):
    config, checkpoint = trained_detector
    image = osp.join(shapes_detection, 'val', sorted(os.listdir(
        osp.join(shapes_detection, 'val')))[0])
    out = str(tmp_path / 'out')
    result = _run(config, '--load-weights', checkpoint, '--input', image, '--output', out,
                  '--explain-algorithm', algorithm, '--save-raw')
    assert result.returncode == 0, result.stderr[-3000:]
    _check_outputs(out, 1, class_wise=False)


def test_classifier_with_target_class_names(trained_classifier, shapes_classification, tmp_path):
    config, checkpoint = trained_classifier
    folder = osp.join(shapes_classification, 'val', 'green_circle')
    out = str(tmp_path / 'out')
    result = _run(config, checkpoint, '--input', folder, '--output', out, '--save-raw',
                  '--target-classes', 'green_circle', '2', '--write-workers', '2')
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = _check_outputs(out, 10)
    for entry in manifest['images']:
        assert [e['class_index'] for e in entry['explanations']] == [1, 2]


def test_config_test_set_without_input(trained_classifier, tmp_path):
    config, checkpoint = trained_classifier
    out = str(tmp_path / 'out')
    result = _run(config, checkpoint, '--output', out, '--save-raw')
    assert result.returncode == 0, result.stderr[-3000:]
    _check_outputs(out, 30)


def test_missing_checkpoint_is_one_clear_line(trained_detector, tmp_path):
    config, _ = trained_detector
    result = _run(config, str(tmp_path / 'missing.pth'), '--output', str(tmp_path / 'o'))
    assert result.returncode != 0
    assert 'checkpoint' in result.stderr and 'missing.pth' in result.stderr


def test_absolute_scale_keeps_an_absent_class_cold(trained_detector, shapes_detection, tmp_path):
    # A demo image holds 2 of the 3 classes. Stretched per map, the third class's map
    # is as red as the others; on the probability scale it stays cold.
    config, checkpoint = trained_detector
    annotations = json.load(open(osp.join(shapes_detection, 'val.json')))
    image = annotations['images'][0]
    present = {a['category_id'] - 1 for a in annotations['annotations']
               if a['image_id'] == image['id']}
    path = osp.join(shapes_detection, 'val', image['file_name'])
    peaks = {}
    for normalize in ('per_map', 'absolute'):
        out = str(tmp_path / normalize)
        result = _run(config, checkpoint, '--input', path, '--output', out, '--save-raw',
                      '--explain-all-classes', '--normalize', normalize)
        assert result.returncode == 0, result.stderr[-3000:]
        entry, = json.load(open(osp.join(out, 'manifest.json')))['images']
        for explanation in entry['explanations']:
            drawn = np.load(osp.join(out, explanation['raw']))
            values = np.load(osp.join(out, explanation['values']))
            assert 0 <= values.min() and values.max() <= 1  # class probabilities
            peaks[normalize, explanation['class_index'] in present] = \
                peaks.get((normalize, explanation['class_index'] in present), []) + \
                [float(drawn.max())]
            if normalize == 'absolute':  # drawn as the probabilities themselves
                np.testing.assert_allclose(drawn, values, atol=1e-6)
    categories = sorted(c['id'] for c in annotations['categories'])
    assert len(present) == 2 and len(categories) == 3
    assert peaks['per_map', False] == [1.0]  # stretched: hot as any
    # Absolute: probabilities averaged over the FPN levels, so even a detected
    # object's peak is well below 1; the absent class stays far below it.
    absent, = peaks['absolute', False]
    check_ceiling('absolute scale: absent class peak / present class peak',
                  absent / min(peaks['absolute', True]), 0.5)


def test_absolute_scale_is_refused_for_maps_without_one(trained_detector, shapes_detection,
                                                        tmp_path):
    config, checkpoint = trained_detector
    image = osp.join(shapes_detection, 'val', sorted(os.listdir(
        osp.join(shapes_detection, 'val')))[0])
    result = _run(config, checkpoint, '--input', image, '--output', str(tmp_path / 'out'),
                  '--explain-algorithm', 'activationmap', '--normalize', 'absolute')
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        'explain.py: error: activationmap maps have no absolute scale')


def test_console_shows_a_bar_and_a_summary_and_the_log_file_the_rest(
        trained_classifier, shapes_classification, tmp_path):
    config, checkpoint = trained_classifier
    images = tmp_path / 'in'
    shutil.copytree(osp.join(shapes_classification, 'val', 'green_circle'), images)
    count = len([name for name in os.listdir(images) if name.endswith('.png')])
    (images / 'broken.png').write_text('not a picture')
    out = str(tmp_path / 'out')
    args = [config, checkpoint, '--input', str(images), '--output', out, '--batch-size', '1']
    result = _run(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    # The bar redraws its line with carriage returns (newlines once read as text).
    lines = result.stdout.rstrip('\n').split('\n')
    bars = [line for line in lines if re.fullmatch(r'\[[ >]*\] \d+/\d+, .*', line)]
    assert bars and bars[-1].startswith(f'[{">" * 10}'), lines  # full at the end
    summary = [line for line in lines if line not in bars]
    assert summary[0] == f'saliency maps of {count} images in {out} ({count} explained now, ' \
        '0 before); 1 inputs skipped'
    assert summary[1].startswith(f'  skipped {images / "broken.png"}: not an image')
    assert len(summary) == 3, summary  # and the log file's path
    assert ' - INFO - ' not in result.stdout + result.stderr
    log = _full_log(result)
    assert 'Config:' in log and f'rank 0: explaining {count + 1} of {count + 1} images' in log
    assert f'skipped {images / "broken.png"}' in log and f'explained {count}/' in log

    verbose = _run(*args, '--verbose')  # every image resumed: a quick run
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert 'Config:' in verbose.stdout and ' - INFO - rank 0: explaining' in verbose.stdout
    assert f'({0} explained now, {count} before)' in verbose.stdout
