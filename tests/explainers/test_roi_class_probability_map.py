"""Two-stage class maps, tested against the detector itself (Faster, Cascade and Sparse R-CNN)."""
import pytest
import torch

from mmxai.explainers import RoIClassProbabilityMap
from mmxai.explainers.base import input_cell_grid
from mmxai.explainers.roi_class_probability_map import cell_spans, max_over_boxes
from mmxai.geometry import CellGrid, cells_inside
from mmxai.models import ExplainModel
from tests.adapters.test_two_stage import NUM_CLASSES, SIZE, TWO_STAGE_CONFIGS, two_stage
from tests.helpers import det_batch, random_images

LOGIT = 30.0


@pytest.fixture(scope='module', params=sorted(TWO_STAGE_CONFIGS))
def detector(request):
    return two_stage(TWO_STAGE_CONFIGS[request.param])


def _explain(model, images, **kwargs):
    explain = ExplainModel(model, explainer='classwisesaliencymap', **kwargs)
    assert isinstance(explain.explainer, RoIClassProbabilityMap)
    with torch.no_grad():
        samples = explain.test_step(det_batch(images))
    return explain, samples


def test_cell_spans_hold_the_cells_whose_centres_are_inside():
    grid = CellGrid(4.0, 4.0, 2.0, 2.0)
    boxes = torch.tensor([[0.0, 0.0, 16.0, 8.0], [5.0, 5.0, 6.0, 6.0], [30.0, 1.0, 40.0, 3.0]])
    spans = cell_spans(boxes, grid, (8, 8))
    inside = cells_inside(boxes, grid, (8, 8))  # the same rule, with the same fallback
    for span, expected in zip(spans.tolist(), inside):
        got = torch.zeros(8, 8, dtype=torch.bool)
        got[span[0]:span[1], span[2]:span[3]] = True
        assert torch.equal(got, expected)


def test_max_over_boxes_is_the_largest_value_of_the_boxes_covering_a_cell():
    generator = torch.Generator().manual_seed(0)
    values = torch.rand(2, 50, generator=generator)
    corners = torch.randint(0, 12, (50, 2, 2), generator=generator)
    spans = torch.stack([corners[:, 0].amin(1), corners[:, 0].amax(1) + 1,
                         corners[:, 1].amin(1), corners[:, 1].amax(1) + 1], 1)
    expected = torch.zeros(2, 12, 12)
    for box in range(50):  # paint every box, keeping the larger value
        r0, r1, c0, c1 = spans[box].tolist()
        expected[:, r0:r1, c0:c1] = torch.maximum(expected[:, r0:r1, c0:c1],
                                                  values[:, box, None, None])
    torch.testing.assert_close(max_over_boxes(values, spans, (12, 12)), expected)


class OneHotRoI:
    """Forward hook on a box head: no class for every RoI but one (background certain where
    the head has a background column), class 1 certain for that one."""

    def __init__(self, row):
        self.row = row

    def __call__(self, _module, _args, output):
        cls_score, *rest = output
        scores = torch.full_like(cls_score, -LOGIT)
        rows = scores.view(-1, scores.shape[-1])  # Sparse R-CNN: (images, queries, classes)
        if rows.shape[1] == NUM_CLASSES + 1:
            rows[:, -1] = LOGIT
        rows[self.row] = -LOGIT
        rows[self.row, 1] = LOGIT
        return (scores, *rest)


def test_a_one_hot_roi_puts_its_mass_inside_its_own_box(detector):
    heads = detector.roi_head.bbox_head
    heads = list(heads) if isinstance(heads, torch.nn.ModuleList) else [heads]
    images = random_images(1, SIZE, SIZE, seed=4)
    row = 7
    # Registered before the adapter's hooks: the capture sees the changed scores.
    handles = [head.register_forward_hook(OneHotRoI(row)) for head in heads]
    try:
        explain, samples = _explain(detector, images, explain_all_classes=True)
    finally:
        for handle in handles:
            handle.remove()
    rois, _, _ = explain.adapter.roi_class_probabilities()
    maps = samples[0].saliency_map
    grid = input_cell_grid(explain.adapter, tuple(maps.shape[-2:]))
    inside = cells_inside(rois[row:row + 1, 1:], grid, tuple(maps.shape[-2:]))[0]
    torch.testing.assert_close(maps[1][inside], torch.ones(int(inside.sum())))
    assert maps[1][~inside].abs().max() < 1e-6  # nothing outside its box
    assert maps[[0, 2]].abs().max() < 1e-6  # nor for any other class


def test_map_where_a_detection_sits_is_at_least_its_score(detector):
    explain, samples = _explain(detector, random_images(2, SIZE, SIZE, seed=1),
                                explain_all_classes=True)
    checked = 0
    for sample in samples:
        maps, predictions = sample.saliency_map, sample.pred_instances
        assert maps.shape == (NUM_CLASSES, SIZE // 4, SIZE // 4)
        assert 0 <= maps.min() and maps.max() <= 1
        grid = CellGrid(*sample.metainfo['explain_cell_grid'])
        inside = cells_inside(predictions.bboxes, grid, tuple(maps.shape[-2:]))
        for box_cells, label, score in zip(inside, predictions.labels, predictions.scores):
            assert maps[label][box_cells].max() >= score - 1e-6
            checked += 1
    assert checked > 10


def test_maps_are_the_same_in_any_batch(detector):
    images = random_images(2, SIZE, SIZE, seed=2)
    _, together = _explain(detector, images, explain_all_classes=True)
    for image, sample in zip(images, together):
        _, alone = _explain(detector, [image], explain_all_classes=True)
        # Sparse R-CNN's per-query products round differently by batch size (2e-5).
        torch.testing.assert_close(sample.saliency_map, alone[0].saliency_map,
                                   atol=1e-4, rtol=0)


def test_only_the_explained_classes_are_computed(detector):
    images = random_images(1, SIZE, SIZE, seed=3)
    _, every = _explain(detector, images, explain_all_classes=True)
    _, one = _explain(detector, images, target_classes=[2])
    torch.testing.assert_close(one[0].saliency_map[0], every[0].saliency_map[2])


def test_box_maps_keep_the_rois_that_regress_to_the_box(detector):
    explain, samples = _explain(detector, random_images(1, SIZE, SIZE, seed=5), score_thr=0.0,
                                explain_all_classes=True, box_targets=['predictions'])
    sample = samples[0]
    records, maps = sample.metainfo['explained_boxes'], sample.box_saliency_map
    assert len(records) == len(sample.pred_instances) == len(maps) > 0
    partial = 0
    for record, box_map, score in zip(records, maps, sample.pred_instances.scores):
        # Its own RoI regresses to it exactly: the box's evidence is at least its score;
        # its RoIs are some of the class's, so its map never exceeds the class map.
        assert record['evidence'] >= float(score) - 1e-6
        class_map = sample.saliency_map[record['label']]
        assert (box_map <= class_map + 1e-6).all()
        partial += bool((box_map < class_map - 1e-3).any())
    assert partial > 0  # the IoU rule leaves RoIs out
