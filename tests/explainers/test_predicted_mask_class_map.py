"""Instance segmenters read from their predicted masks (SOLO, SOLOv2, CondInst, Mask2Former)."""
import pytest
import torch
import torch.nn.functional as F

from mmxai.adapters import PredictedMaskAdapter
from mmxai.explainers import PredictedMaskClassMap
from mmxai.geometry import boxes_to_input, masks_to_input
from mmxai.models import ExplainModel
from mmxai.utils import UnsupportedModelError
from tests.detector_zoo import lower_score_thresholds
from tests.helpers import build_model, det_batch, load_config, random_images

SIZE = 128


@pytest.fixture(scope='module')
def solov2():
    cfg = load_config('mmdet::solov2/solov2_r50_fpn_1x_coco.py')
    cfg.model.backbone.update(depth=18, norm_eval=False)
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    cfg.model.mask_head.num_classes = 3
    # Random weights: keep their detections, and threshold their soft masks where
    # they cover parts of the image (at 0.5 they cover nearly all of it).
    lower_score_thresholds(cfg.model.test_cfg)
    cfg.model.test_cfg.update(filter_thr=0.0, mask_thr=0.7)
    return build_model(cfg)


def _predict(model, seed=3):
    explain = ExplainModel(model, explainer='classwisesaliencymap', score_thr=0.0,
                           explain_all_classes=True)
    with torch.no_grad():
        data = explain.data_preprocessor(det_batch(random_images(1, SIZE, SIZE, seed=seed)))
        with explain.adapter.capture():
            samples = model.predict(data['inputs'], data['data_samples'])
        maps = explain.explainer(explain.adapter, samples)
    return explain, samples, maps


@pytest.mark.parametrize('flip', [False, True])
def test_masks_land_where_their_boxes_land_on_the_input(flip):
    # A rectangle on a 200 x 300 original resized by 0.64 onto a 160 x 224 padded input.
    meta = dict(scale_factor=(0.64, 0.64), img_shape=(128, 192), ori_shape=(200, 300),
                flip=flip, flip_direction='horizontal')
    masks = torch.zeros(1, 200, 300, dtype=torch.bool)
    masks[0, 50:150, 25:125] = True
    size = (40, 56)  # 1/4 of the input
    on_input = masks_to_input(masks, meta, size, (160, 224))[0]
    x1, y1, x2, y2 = (boxes_to_input(torch.tensor([[25.0, 50.0, 125.0, 150.0]]), meta)[0] /
                      4).tolist()
    centres_y, centres_x = torch.arange(size[0]) + 0.5, torch.arange(size[1]) + 0.5
    inner = ((centres_y > y1 + 1) & (centres_y < y2 - 1))[:, None] & \
        ((centres_x > x1 + 1) & (centres_x < x2 - 1))[None]
    outer = ~(((centres_y > y1 - 1) & (centres_y < y2 + 1))[:, None] &
              ((centres_x > x1 - 1) & (centres_x < x2 + 1))[None])
    assert inner.sum() > 100 and outer.sum() > 1000
    assert torch.allclose(on_input[inner], torch.ones(1))
    assert on_input[outer].abs().max() == 0
    # The mask's mass is its area on the input, in cells.
    assert float(on_input.sum()) == pytest.approx((x2 - x1) * (y2 - y1), rel=0.03)


def test_solov2_class_maps_are_the_mean_of_the_masks_it_predicts(solov2):
    explain, samples, maps = _predict(solov2)
    assert isinstance(explain.adapter, PredictedMaskAdapter)
    assert isinstance(explain.explainer, PredictedMaskClassMap)
    instances = samples[0].pred_instances
    assert len(instances) > 1 and instances.masks.any()
    masks = instances.masks.float()  # (N, SIZE, SIZE): the original is the input here
    for label in range(3):
        mine = instances.labels == label
        expected = F.avg_pool2d(masks[mine].mean(0)[None, None], 4)[0, 0] if mine.any() \
            else torch.zeros(SIZE // 4, SIZE // 4)
        torch.testing.assert_close(maps[0, label], expected)
    assert maps.amax() > 0


def test_score_threshold_decides_which_masks_make_the_map(solov2):
    explain, samples, _ = _predict(solov2)
    scores = samples[0].pred_instances.scores
    middle = float(scores.median())
    for score_thr, kept in ((middle, scores >= middle), (float(scores.max()) + 1e-3, None)):
        explainer = PredictedMaskClassMap(score_thr=score_thr)
        maps = explainer(explain.adapter, samples)
        if kept is None:
            assert maps.abs().amax() == 0
        else:
            instances = samples[0].pred_instances[kept]
            label = int(instances.labels[0])
            expected = F.avg_pool2d(instances.masks[instances.labels == label].float().mean(0)
                                    [None, None], 4)[0, 0]
            torch.testing.assert_close(maps[0, label], expected)


def test_box_maps_of_solo_predictions_average_the_masks_whose_box_overlaps(solov2):
    # SOLOv2 has no box branch (its boxes are 0): each prediction's box is its mask's
    # bounding box, and its map the mean mask of its class's detections with IoU >= 0.5.
    from torchvision.ops import box_iou
    _, raw, _ = _predict(solov2)
    assert (raw[0].pred_instances.bboxes == 0).all()
    explain = ExplainModel(solov2, score_thr=0.0, box_targets=['predictions'])
    with torch.no_grad():
        sample = explain.test_step(det_batch(random_images(1, SIZE, SIZE, seed=3)))[0]
    instances = sample.pred_instances
    masks = instances.masks.float()
    assert len(instances) > 1 and (instances.bboxes[:, 2:] > instances.bboxes[:, :2]).all()
    for k in range(len(instances)):  # each box hugs its mask
        ys, xs = torch.nonzero(instances.masks[k], as_tuple=True)
        assert instances.bboxes[k].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    same = (box_iou(instances.bboxes, instances.bboxes) >= 0.5) & \
        (instances.labels[:, None] == instances.labels[None])
    records = sample.metainfo['explained_boxes']
    assert len(records) == len(instances)
    for k in range(len(instances)):
        expected = F.avg_pool2d(masks[same[k]].mean(0)[None, None], 4)[0, 0]
        torch.testing.assert_close(sample.box_saliency_map[k], expected)


def test_detections_without_masks_are_an_error_not_a_blank_map(solov2):
    explain, samples, _ = _predict(solov2)
    del samples[0].pred_instances.masks
    with pytest.raises(UnsupportedModelError, match='without masks'):
        explain.explainer(explain.adapter, samples)
