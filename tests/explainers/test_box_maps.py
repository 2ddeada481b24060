"""Per-box maps: the evidence for one box, from the same pass, on real detectors."""
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate

from mmxai.apis import inference_pipeline
from mmxai.datasets.synthetic import scene
from mmxai.explainers.drise import box_similarity
from mmxai.models import ExplainModel, maps_on_original_image
from mmxai.models import build_model as build_trained
from mmxai.utils import UnsupportedModelError
from mmxai.utils.config import test_pipeline_of as pipeline_of
from tests.helpers import DET_DEMO_CONFIG, build_model, check_floor, load_config


def _two_of_a_kind(seed=0):
    """A 256 px demo scene with two red squares: one class, two objects (and their boxes)."""
    return scene(np.random.default_rng(seed), 256, ['red_square', 'red_square'], 40, 90)


def _batch(cfg, *images):
    steps = inference_pipeline(pipeline_of(cfg))
    pipeline = Compose([dict(type='mmxai.LoadImageFromArray'), *steps[1:]])
    return pseudo_collate([pipeline(dict(img=image)) for image in images])


def _peak(maps, meta):
    original = maps_on_original_image(maps, meta)
    flat = original.flatten(1).argmax(1)
    return torch.stack([flat % original.shape[-1], flat // original.shape[-1]], 1).float() + 0.5


def _inside(points, boxes):
    boxes = torch.as_tensor(boxes, dtype=torch.float32)
    return ((points[:, 0] >= boxes[:, 0]) & (points[:, 0] <= boxes[:, 2]) &
            (points[:, 1] >= boxes[:, 1]) & (points[:, 1] <= boxes[:, 3]))


def test_each_box_map_shows_its_own_object(trained_detector):
    # The class map of two objects of one class peaks on one of them; each box's
    # map keeps the anchors that regress to that box only, so it peaks on its own.
    config, checkpoint = trained_detector
    cfg = Config.fromfile(config)
    model = build_trained(cfg, checkpoint)
    explain = ExplainModel(model, score_thr=0.3, box_targets=['predictions'])
    forwards = []
    model.backbone.register_forward_hook(lambda *args: forwards.append(1))
    hits = on_own_object = boxes_seen = 0
    for seed in range(4):
        image, objects = _two_of_a_kind(seed)
        with torch.no_grad():
            sample = explain.test_step(_batch(cfg, image))[0]
        assert len(forwards) == seed + 1  # one pass per batch: nothing runs again
        records = sample.metainfo['explained_boxes']
        assert [r['index'] for r in records] == \
            torch.nonzero(sample.pred_instances.scores >= 0.3)[:, 0].tolist()
        assert sample.box_saliency_map.shape[0] == len(records)
        # The anchor that produced a box regresses to it, and its class probability
        # is at least the box's score (ATSS: probability times centre-ness).
        scores = sample.pred_instances.scores[[r['index'] for r in records]]
        peaks_on_cells = sample.box_saliency_map.flatten(1).amax(1)
        assert (peaks_on_cells >= scores - 1e-4).all(), (peaks_on_cells, scores)
        assert (peaks_on_cells <= 1).all()
        meta = dict(sample.metainfo)
        peaks = _peak(sample.box_saliency_map, meta)
        boxes = torch.tensor([r['bbox'] for r in records])
        hits += int(_inside(peaks, boxes).sum())
        # Each box's object: the planted square it overlaps most. Its map peaks on that
        # square, not on the other one (which the class map may well prefer).
        squares = torch.tensor(objects, dtype=torch.float32)
        corners_low = torch.maximum(boxes[:, None, :2], squares[None, :, :2])
        corners_high = torch.minimum(boxes[:, None, 2:], squares[None, :, 2:])
        overlap = (corners_high - corners_low).clamp_min(0).prod(-1)  # (boxes, squares)
        own = squares[overlap.argmax(1)]
        on_own_object += int(_inside(peaks, own).sum())
        boxes_seen += len(records)
        for record in records:
            assert record['source'] == 'predictions' and record['class_name'] == 'red_square'
    check_floor('box maps: squares found (of 8)', boxes_seen, 6)
    check_floor('box maps: peak inside the box', hits / max(boxes_seen, 1), 0.9)
    check_floor('box maps: peak on its own square', on_own_object / max(boxes_seen, 1), 0.9)


def test_an_image_without_a_box_has_no_box_maps(trained_detector):
    # A batch of an empty scene (nothing scores 0.3) and a scene with objects: the
    # empty image gets no box map, the other its own.
    config, checkpoint = trained_detector
    cfg = Config.fromfile(config)
    explain = ExplainModel(build_trained(cfg, checkpoint), score_thr=0.3,
                           box_targets=['predictions'])
    empty, _ = scene(np.random.default_rng(7), 256, [], 40, 90)
    full, _ = _two_of_a_kind(1)
    with torch.no_grad():
        empty_sample, full_sample = explain.test_step(_batch(cfg, empty, full))
    assert (empty_sample.pred_instances.scores < 0.3).all()
    assert empty_sample.metainfo['explained_boxes'] == []
    assert empty_sample.box_saliency_map.shape[0] == 0
    records = full_sample.metainfo['explained_boxes']
    assert len(records) == int((full_sample.pred_instances.scores >= 0.3).sum()) >= 1
    assert full_sample.box_saliency_map.shape[0] == len(records)


def test_gradient_maps_have_no_per_box_maps():
    with pytest.raises(UnsupportedModelError, match='no per-box maps'):
        ExplainModel(build_model(load_config(DET_DEMO_CONFIG)), explainer='gradcam',
                     box_targets=['predictions'])


def test_drise_box_similarity_is_the_papers_formula():
    from mmengine.structures import InstanceData
    generator = torch.Generator().manual_seed(0)
    targets = torch.tensor([[10., 10., 50., 50.], [60., 20., 90., 80.]])
    labels = torch.tensor([0, 2])
    detections = []
    for count in (3, 0, 5):  # a masked image may detect nothing
        corner = torch.rand(count, 2, generator=generator) * 60
        size = torch.rand(count, 2, generator=generator) * 40 + 5
        detections.append(InstanceData(
            bboxes=torch.cat([corner, corner + size], 1),
            labels=torch.randint(0, 3, (count,), generator=generator),
            scores=torch.rand(count, generator=generator)))
    expected = torch.zeros(3, 2)
    for row, found in enumerate(detections):
        for t, (box, label) in enumerate(zip(targets, labels)):
            for b, found_label, s in zip(found.bboxes, found.labels, found.scores):
                x1, y1 = max(box[0], b[0]), max(box[1], b[1])
                x2, y2 = min(box[2], b[2]), min(box[3], b[3])
                inter = max(0., float(x2 - x1)) * max(0., float(y2 - y1))
                union = float((box[2] - box[0]) * (box[3] - box[1]) +
                              (b[2] - b[0]) * (b[3] - b[1])) - inter
                if int(found_label) == int(label):
                    expected[row, t] = max(float(expected[row, t]), inter / union * float(s))
    torch.testing.assert_close(box_similarity(detections, targets, labels), expected)
