"""What the writer adds to the manifest on an annotated test set: ground truth in
original pixels, and each map's peak and relevance mass, checked against the
annotation files and the raw maps."""
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from mmxai.apis import explain_config
from mmxai.evaluation.functional import PLATEAU_TOLERANCE
from tests.helpers import relevance_mass


def _manifest(out):
    with open(osp.join(out, 'manifest.json')) as file:
        return json.load(file)


def _coco_truth(ann_file):
    """file name -> (boxes x1 y1 x2 y2, labels from 0), as the COCO file says."""
    with open(ann_file) as file:
        coco = json.load(file)
    truth = {image['file_name']: ([], []) for image in coco['images']}
    names = {image['id']: image['file_name'] for image in coco['images']}
    for ann in sorted(coco['annotations'], key=lambda a: a['id']):
        x, y, w, h = ann['bbox']
        truth[names[ann['image_id']]][0].append([x, y, x + w, y + h])
        truth[names[ann['image_id']]][1].append(ann['category_id'] - 1)
    return truth


def test_detection_ground_truth_peaks_and_relevance_mass(annotated_detection_runs):
    runs, ann_file = annotated_detection_runs
    truth = _coco_truth(ann_file)
    checked = 0
    for run in runs:
        manifest = _manifest(run['output_dir'])
        assert manifest['score_thr'] == 0.3 and manifest['num_images'] == len(truth) == 30
        for entry in manifest['images']:
            boxes, labels = truth[entry['rel_path']]
            assert entry['ground_truth']['labels'] == labels
            # Original pixels, although the network saw the image at 192 px.
            np.testing.assert_allclose(entry['ground_truth']['bboxes'], boxes, atol=1e-3)
            for explanation in entry['explanations']:
                saliency = np.load(osp.join(run['output_dir'], explanation['raw']))
                assert saliency.shape == (256, 256)
                # The peak is a maximal pixel: within PLATEAU_TOLERANCE of the range from
                # the maximum (peak_points' definition; plateaus point at their centre).
                column, row = explanation['peak']
                spread = float(saliency.max() - saliency.min())
                assert saliency[row, column] >= saliency.max() - PLATEAU_TOLERANCE * spread
                label = explanation['class_index']
                about = sorted(set(labels)) if label is None else [label] if label in labels else []
                assert sorted(map(int, explanation['relevance_mass'])) == about
                for cls in about:
                    expected = relevance_mass(
                        saliency, [b for b, lab in zip(boxes, labels) if lab == cls])
                    assert explanation['relevance_mass'][str(cls)] == pytest.approx(expected,
                                                                                     abs=1e-5)
                    checked += 1
    assert checked > 100


def test_classification_ground_truth(annotated_classification_run):
    run, data_root = annotated_classification_run
    labels = dict(line.split() for line in open(osp.join(data_root, 'val.txt')))
    manifest = _manifest(run['output_dir'])
    assert manifest['num_images'] == len(labels) == 30
    for entry in manifest['images']:
        assert entry['ground_truth']['labels'] == [int(labels[entry['rel_path']])]
        with open(osp.join(data_root, 'val', osp.splitext(entry['rel_path'])[0] + '.json')) as f:
            assert entry['ground_truth']['bboxes'] == [json.load(f)['bbox']]
        assert len(entry['explanations']) == 3 and all('peak' in x for x in entry['explanations'])


def test_folder_mode_has_no_ground_truth(trained_detector, shapes_detection, tmp_path):
    config_path, checkpoint = trained_detector
    cfg = explain_config(Config.fromfile(config_path), checkpoint, str(tmp_path / 'out'),
                         inputs=[osp.join(shapes_detection, 'val', 'val_00000.png')])
    cfg.work_dir = str(tmp_path / 'logs')
    Runner.from_cfg(cfg).test()
    (entry,) = _manifest(str(tmp_path / 'out'))['images']
    assert 'ground_truth' not in entry
    assert entry['explanations'] and all('peak' not in x for x in entry['explanations'])
