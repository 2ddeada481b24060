"""tools/explain.py --explain-gt, --target-boxes and --per-box, end to end on the demo ATSS."""
import json
import os
import os.path as osp
import shutil
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from tests.tools.test_explain_tool import _run

SCORE_THR = 0.5


def _iou(a, b):
    """Intersection over union of two x1, y1, x2, y2 boxes (continuous coordinates)."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _annotated_objects(shapes_detection):
    """file name -> [(x1, y1, x2, y2), label] of val.json, in annotation order."""
    with open(osp.join(shapes_detection, 'val.json')) as file:
        coco = json.load(file)
    names = {image['id']: image['file_name'] for image in coco['images']}
    objects = {}
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        objects.setdefault(names[ann['image_id']], []).append(
            ((x, y, x + w, y + h), ann['category_id'] - 1))
    return objects


@pytest.fixture(scope='module')
def explained_gt(trained_detector, tmp_path_factory):
    config, checkpoint = trained_detector
    out = str(tmp_path_factory.mktemp('explain_gt'))
    result = _run(config, checkpoint, '--output', out, '--explain-gt', '--save-raw',
                  '--score-thr', str(SCORE_THR))
    assert result.returncode == 0, result.stderr[-3000:]
    with open(osp.join(out, 'manifest.json')) as file:
        return out, json.load(file)


def test_every_annotated_object_is_explained_matched_or_missed(explained_gt, shapes_detection):
    out, manifest = explained_gt
    objects = _annotated_objects(shapes_detection)
    assert len(manifest['images']) == len(objects) == 30
    detected = 0
    for entry in manifest['images']:
        expected = objects[osp.basename(entry['image'])]
        records = entry['boxes']
        assert [r['source'] for r in records] == ['ground_truth'] * len(expected)
        assert [r['index'] for r in records] == list(range(len(expected)))
        predictions = entry['predictions']
        for record, (box, label) in zip(records, expected):
            np.testing.assert_allclose(record['bbox'], box, atol=1e-3)
            assert record['label'] == label
            # Matching, recomputed here from the manifest's own predictions.
            same_class = [(_iou(box, p), s, k) for k, (p, lab, s) in enumerate(zip(
                predictions['bboxes'], predictions['labels'], predictions['scores']))
                if lab == label]
            found = any(iou >= 0.5 and score >= SCORE_THR for iou, score, _ in same_class)
            assert record['detected'] == found
            best = max(same_class, default=None)
            if best is None or best[0] <= 0:
                assert record['match'] is None
            else:
                assert record['match']['prediction'] == best[2]
                assert record['match']['iou'] == pytest.approx(best[0], abs=1e-4)
                assert record['match']['score'] == pytest.approx(best[1], abs=1e-6)
            # Its files: the map, the overlay with the box drawn, the values.
            values = np.load(osp.join(out, record['values']))
            assert values.shape == tuple(entry['ori_shape'])
            # evidence: the map's peak on the model's cells; the image is resampled from them.
            assert float(values.max()) <= record['evidence'] + 1e-6
            overlay = cv2.imread(osp.join(out, record['overlay']))
            x1, y1 = (int(round(v)) for v in box[:2])
            assert (overlay[y1, x1 + 3:int(box[2]) - 3] == 255).all()  # the box's top edge
            # A prediction that overlaps it (IoU >= 0.5) came from an anchor that
            # regresses to it, whose class probability is at least that score.
            overlapping = [score for iou, score, _ in same_class if iou >= 0.52]
            if overlapping:
                assert record['evidence'] >= max(overlapping) - 1e-3, (record, overlapping)
            assert 0 < record['in_box'] <= 1
            detected += found
    assert detected >= 30  # the demo detector finds most objects at 0.5


def test_given_boxes_on_a_folder_are_the_ground_truth_maps(explained_gt, trained_detector,
                                                             shapes_detection, tmp_path):
    # The same boxes, given in a file for a folder of the same images, explain
    # exactly as the annotated run did.
    config, checkpoint = trained_detector
    out_gt, manifest = explained_gt
    objects = _annotated_objects(shapes_detection)
    chosen = sorted(objects)[:4]
    folder = tmp_path / 'images'
    folder.mkdir()
    for name in chosen:
        shutil.copy(osp.join(shapes_detection, 'val', name), folder / name)
    given = {name: [dict(bbox=list(box), label=['red_square', 'green_circle',
                                                 'blue_triangle'][label])
                    for box, label in objects[name]] for name in chosen}
    boxes_file = tmp_path / 'boxes.json'
    boxes_file.write_text(json.dumps(given))
    out = str(tmp_path / 'given')
    result = _run(config, checkpoint, '--input', str(folder), '--output', out, '--save-raw',
                  '--target-boxes', str(boxes_file), '--score-thr', str(SCORE_THR))
    assert result.returncode == 0, result.stderr[-3000:]
    by_name = {osp.basename(e['image']): e for e in manifest['images']}
    with open(osp.join(out, 'manifest.json')) as file:
        entries = json.load(file)['images']
    assert sorted(osp.basename(e['image']) for e in entries) == chosen
    for entry in entries:
        reference = by_name[osp.basename(entry['image'])]['boxes']
        assert len(entry['boxes']) == len(reference)
        for record, expected in zip(entry['boxes'], reference):
            assert record['source'] == 'given'
            for key in ('label', 'detected', 'match'):
                assert record[key] == expected[key]
            np.testing.assert_allclose(np.load(osp.join(out, record['values'])),
                                       np.load(osp.join(out_gt, expected['values'])), atol=1e-6)


def test_box_options_that_cannot_apply_are_one_line_errors(trained_detector, shapes_detection,
                                                          tmp_path):
    config, checkpoint = trained_detector
    image = osp.join(shapes_detection, 'val', sorted(
        f for f in os.listdir(osp.join(shapes_detection, 'val')) if f.endswith('.png'))[0])
    cases = [
        (['--input', image, '--explain-gt'], 'ground-truth boxes come from the config'),
        (['--target-boxes', str(tmp_path / 'none.json')], 'target boxes'),
        (['--explain-gt', '--explain-algorithm', 'gradcam'], 'has no per-box maps'),
    ]
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({osp.basename(image): [dict(bbox=[5, 5, 1, 1], label=0)]}))
    cases.append((['--input', image, '--target-boxes', str(bad)], 'expected {"bbox"'))
    other = tmp_path / 'other.json'
    other.write_text(json.dumps({'elsewhere.png': [dict(bbox=[1, 1, 5, 5], label=0)]}))
    cases.append((['--input', image, '--target-boxes', str(other)],
                  "'elsewhere.png' is none of the input images"))
    # Independent processes that mostly import: two at a time halves the wait.
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(
            lambda index: _run(config, checkpoint, '--output', str(tmp_path / f'out{index}'),
                               *cases[index][0]), range(len(cases))))
    for result, (args, message) in zip(results, cases):
        last = result.stderr.strip().splitlines()[-1]
        assert result.returncode == 2 and last.startswith('explain.py: error:'), result.stderr
        assert message in last, (args, last)
