"""Error analysis maths against COCO's own matching and plain per-pixel definitions."""
import numpy as np
import pytest
import torch

from mmxai.boxes import match_detections
from mmxai.evaluation.error_analysis import (
    class_summary,
    describe_maps,
    error_events,
    peak_positions,
    relevance_mass,
)


def _random_scene(rng, num_gt, num_classes=3, size=100.0):
    xy = rng.uniform(0, size * 0.7, (num_gt, 2))
    wh = rng.uniform(5, size * 0.3, (num_gt, 2))
    gt = np.concatenate([xy, xy + wh], 1)
    gt_labels = rng.integers(0, num_classes, num_gt)
    # Predictions: jittered copies of ground truth (some match, some not), wrong-class
    # copies and random boxes.
    jitter = gt + rng.normal(0, 0.25, gt.shape) * np.repeat(wh, 2, 1)
    labels = np.where(rng.random(num_gt) < 0.8, gt_labels, rng.integers(0, num_classes, num_gt))
    extra = rng.integers(0, 4)
    xy2 = rng.uniform(0, size * 0.7, (extra, 2))
    boxes = np.concatenate([jitter, np.concatenate([xy2, xy2 + 20], 1), jitter[:2]])
    labels = np.concatenate([labels, rng.integers(0, num_classes, extra), labels[:2]])
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    return gt, gt_labels, boxes, labels, rng.permutation(len(boxes)) / len(boxes) + 0.01


def test_matching_equals_coco_eval_at_iou_half():
    """COCOeval's per-image matches (one IoU threshold 0.5, every detection kept)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    rng = np.random.default_rng(0)
    scenes = [_random_scene(rng, int(rng.integers(0, 7))) for _ in range(40)]
    coco_gt = COCO()
    annotations, detections = [], []
    for image_id, (gt, gt_labels, boxes, labels, scores) in enumerate(scenes):
        for box, label in zip(gt, gt_labels):
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id,
                                    category_id=int(label) + 1, iscrowd=0,
                                    bbox=[box[0], box[1], box[2] - box[0], box[3] - box[1]],
                                    area=float((box[2] - box[0]) * (box[3] - box[1]))))
        for box, label, score in zip(boxes, labels, scores):
            detections.append(dict(image_id=image_id, category_id=int(label) + 1,
                                   score=float(score),
                                   bbox=[box[0], box[1], box[2] - box[0], box[3] - box[1]]))
    coco_gt.dataset = dict(images=[dict(id=i) for i in range(len(scenes))],
                           annotations=annotations,
                           categories=[dict(id=c + 1) for c in range(3)])
    coco_gt.createIndex()
    coco_dt = coco_gt.loadRes(detections)
    evaluation = COCOeval(coco_gt, coco_dt, 'bbox')
    evaluation.params.iouThrs = np.array([0.5])
    evaluation.params.areaRng, evaluation.params.areaRngLbl = [[0, 1e10]], ['all']
    evaluation.params.maxDets = [1000]
    evaluation.evaluate()
    coco_match = {}  # detection id -> matched annotation id (0: none)
    for image in evaluation.evalImgs:
        if image is not None:
            coco_match.update(zip(image['dtIds'], image['dtMatches'][0].astype(int).tolist()))
    first_ann = np.cumsum([0] + [len(s[0]) for s in scenes])
    first_det = np.cumsum([0] + [len(s[2]) for s in scenes])
    matched_any = 0
    for image_id, (gt, gt_labels, boxes, labels, scores) in enumerate(scenes):
        matched, _ = match_detections(boxes, labels, scores, gt, gt_labels)
        for d, g in enumerate(matched.tolist()):
            expected = coco_match[first_det[image_id] + d + 1]
            assert (g + first_ann[image_id] + 1 if g >= 0 else 0) == expected
            matched_any += g >= 0
    assert 20 < matched_any < len(detections) - 20  # both outcomes are exercised


def test_detection_events_follow_the_thresholds():
    gt = dict(bboxes=[[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], labels=[0, 1, 0])
    predictions = dict(bboxes=[[0, 0, 10, 10], [0, 0, 10, 9], [20, 20, 30, 30], [50, 50, 60, 60],
                               [80, 80, 90, 90]],
                       labels=[0, 0, 1, 0, 2], scores=[0.9, 0.8, 0.5, 0.2, 0.4])
    events = error_events(predictions, gt, score_thr=0.3, high_score_thr=0.65)
    got = sorted((e['kind'], e['label'], e['pred'], e['gt']) for e in events)
    assert got == sorted([('tp_high', 0, 0, 0),   # best box of the object
                          ('fp', 0, 1, None),     # a second box on a matched object
                          ('tp_low', 1, 2, 1),    # right, but scores below 0.65
                          ('fp', 2, 4, None),     # no object there
                          ('fn', 0, None, 2)])    # its only box scores below score_thr


def test_classification_events():
    gt = dict(labels=[1])
    right = dict(labels=[1], scores=[0.1, 0.7, 0.2])
    wrong = dict(labels=[2], scores=[0.1, 0.3, 0.6])
    assert [(e['kind'], e['label']) for e in error_events(right, gt, 0.3, 0.65)] == [('tp_high', 1)]
    assert [(e['kind'], e['label']) for e in error_events(right, gt, 0.3, 0.8)] == [('tp_low', 1)]
    assert sorted((e['kind'], e['label']) for e in error_events(wrong, gt, 0.3, 0.65)) == \
        [('fn', 1), ('fp', 2)]


def _mass_by_pixel_centres(saliency, boxes):
    """Arras et al.'s relevance mass, pixel by pixel: sum inside the boxes' union / sum."""
    inside = 0.0
    for row in range(saliency.shape[0]):
        for col in range(saliency.shape[1]):
            x, y = col + 0.5, row + 0.5
            if any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in boxes):
                inside += saliency[row, col]
    return inside / saliency.sum()


@pytest.mark.parametrize('seed', range(5))
def test_relevance_mass_equals_the_per_pixel_definition(seed):
    rng = np.random.default_rng(seed)
    maps = rng.random((3, 23, 31))
    xy = rng.uniform(-5, 25, (4, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 15, (4, 2))], 1)  # fractional, overlapping
    got = relevance_mass(torch.from_numpy(maps), torch.from_numpy(boxes))
    expected = [_mass_by_pixel_centres(m, boxes) for m in maps]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_relevance_mass_properties():
    maps = torch.zeros(2, 40, 50)
    maps[0, 10:20, 5:15] = torch.rand(10, 10) + 0.1  # all inside the box
    maps[1] = 1.0  # uniform: the box's share of the pixels
    box = torch.tensor([[5.0, 10.0, 15.0, 20.0]])
    mass = relevance_mass(maps, box)
    assert mass[0] == pytest.approx(1.0) and mass[1] == pytest.approx(100 / 2000)
    assert torch.isnan(relevance_mass(torch.zeros(1, 4, 4), box))[0]  # an all-zero map


def test_peaks_and_what_each_map_gets():
    rng = np.random.default_rng(3)
    maps = torch.from_numpy(rng.random((3, 20, 30)))
    peaks = peak_positions(maps).tolist()
    for m, (x, y) in zip(maps.numpy(), peaks):
        assert (y, x) == np.unravel_index(m.argmax(), m.shape)
    truth = dict(bboxes=[[0, 0, 10, 10], [10, 5, 20, 15]], labels=[0, 2])
    described = describe_maps(maps, [0, 1, -1], truth)
    assert set(described[0]['relevance_mass']) == {'0'}        # its own class, present
    assert described[1]['relevance_mass'] == {}                # class 1 has no object
    assert set(described[2]['relevance_mass']) == {'0', '2'}   # class-agnostic: every class
    assert described[2]['relevance_mass']['2'] == pytest.approx(
        _mass_by_pixel_centres(maps[2].numpy(), [truth['bboxes'][1]]))


def test_class_summary_counts_and_pointing():
    truth = dict(bboxes=[[0, 0, 10, 10], [20, 20, 30, 30]], labels=[0, 0])
    events = [dict(kind='tp_high', label=0, pred=0, gt=0, score=0.9, iou=1.0),
              dict(kind='fn', label=0, pred=None, gt=1, score=None, iou=None)]
    on_tp = dict(peak=[5, 5], relevance_mass={'0': 0.5})
    on_fn = dict(peak=[25, 25], relevance_mass={'0': 0.7})
    images = [dict(ground_truth=truth, events=events, maps=dict(a={0: on_tp}, b={-1: on_fn}))]
    row = class_summary(images, ['a', 'b'], 2)[0]
    assert row['counts'] == dict(tp_high=1, tp_low=0, fp=0, fn=1, images=1)
    assert row['algorithms']['a'] == dict(pointing_tp=[1, 1], pointing_fn=[0, 1],
                                          relevance_mass=[0.5, 1])
    assert row['algorithms']['b']['pointing_tp'] == [0, 1]
    assert row['algorithms']['b']['pointing_fn'] == [1, 1]
