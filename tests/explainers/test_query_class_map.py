"""QueryClassMap: class and per-box maps of DETR-style detectors from their one prediction pass."""
import os.path as osp

import pytest
import torch

from mmxai.explainers import QueryClassMap, build_explainer
from mmxai.models import ExplainModel
from mmxai.utils import UnsupportedModelError
from tests.adapters.test_query_detector import NUM_CLASSES, SMALL, predict, query_detector
from tests.helpers import CONFIGS, build_model, det_batch, load_config, random_images


@pytest.fixture(scope='module')
def detr():
    return query_detector('detr')


def test_a_class_map_holds_the_class_probability_of_every_query(detr):
    # M_c = sum_q p_q(c) A_q with every row A_q a distribution over the tokens: the
    # map of class c sums to the queries' total probability of c (DETR's softmax
    # without the no-object column, computed here from the head's logits).
    kept = {}
    detr.bbox_head.register_forward_hook(lambda m, a, out: kept.__setitem__('out', out))
    adapter, _, samples = predict(detr, random_images(2, SMALL, SMALL))
    maps = QueryClassMap().explain(adapter, samples)
    assert maps.shape == (2, NUM_CLASSES, SMALL // 32, SMALL // 32)
    logits = kept['out'][0][-1]
    probabilities = logits.exp() / logits.exp().sum(-1, keepdim=True)
    torch.testing.assert_close(maps.sum((-2, -1)), probabilities[..., :NUM_CLASSES].sum(1))
    assert not torch.allclose(maps[0], maps[1])


def test_a_query_box_map_is_that_querys_attention():
    # A box that only query q's own box matches (IoU >= 0.99) maps q's attention
    # times its probability of the box's class, on the tokens' grid.
    from mmdet.structures.bbox import bbox_overlaps
    detr = query_detector('detr')
    with torch.no_grad():  # random queries predict alike boxes: spread them out
        detr.bbox_head.fc_reg.weight.mul_(10)
    adapter, _, samples = predict(detr, random_images(1, SMALL, SMALL, seed=3))
    probabilities = adapter.query_class_probabilities()[0]
    boxes = adapter.query_boxes(0, (SMALL, SMALL))
    overlaps = bbox_overlaps(boxes, boxes).fill_diagonal_(0)
    apart = overlaps.amax(1) + (boxes[:, 2:] - boxes[:, :2]).amin(1).le(4)  # no slivers
    query = int(apart.argmin())
    assert overlaps[query].max() < 0.99 and apart[query] < 1
    label = int(probabilities[query].argmax())
    box = boxes[query]
    box_map, = QueryClassMap(box_iou_thr=0.99).explain_boxes(
        adapter, samples, [box[None]], [torch.tensor([label])])[0]
    expected = probabilities[query, label] * adapter.cross_attention()[0, query]
    torch.testing.assert_close(box_map.flatten(), expected)
    # A box no query predicts has an all-zero map.
    far = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    empty, = QueryClassMap().explain_boxes(adapter, samples, [far], [torch.tensor([0])])
    assert empty.abs().max() == 0


def test_dino_maps_come_from_the_encoder_and_per_box_from_attention():
    dino = build_model(load_config(osp.join(CONFIGS, 'demo', 'dino_tiny_shapes.py')))
    explain = ExplainModel(dino, explainer='classwisesaliencymap', score_thr=0.0,
                           explain_all_classes=True, box_targets=['predictions'])
    assert isinstance(explain.explainer, QueryClassMap)
    forwards = []
    dino.backbone.register_forward_hook(lambda *args: forwards.append(1))
    data = det_batch(random_images(2, SMALL, SMALL))
    with torch.no_grad():
        samples = explain.test_step(data)
    assert len(forwards) == 1  # one pass: nothing runs again
    for sample in samples:
        maps = sample.saliency_map
        assert maps.shape[0] == NUM_CLASSES and (maps >= 0).all() and (maps <= 1).all()
        assert maps.flatten(1).amax(1).min() > 0
        boxes = sample.box_saliency_map
        assert boxes.shape[0] == len(sample.metainfo['explained_boxes']) > 0
        assert (boxes.flatten(1).amax(1) > 0).all()  # a predicted box's own query is evidence
    # The encoder's class probabilities, explicitly: values are probabilities.
    assert build_explainer(dict(algorithm='classwisesaliencymap', source='encoder'),
                           'query_detection').value_range == (0.0, 1.0)


def test_encoder_maps_are_refused_where_the_encoder_scores_no_classes(detr):
    with pytest.raises(UnsupportedModelError, match='not two-stage'):
        ExplainModel(detr, explainer=dict(algorithm='classwisesaliencymap', source='encoder'))
    # Two-stage Deformable DETR trains its encoder scores as objectness (every label 0).
    cfg = load_config(
        'mmdet::deformable_detr/deformable-detr-refine-twostage_r50_16xb2-50e_coco.py')
    cfg.model.backbone.depth = 18
    cfg.model.neck.in_channels = [128, 256, 512]
    cfg.model.encoder.num_layers = cfg.model.decoder.num_layers = 1
    deformable = build_model(cfg)
    with pytest.raises(UnsupportedModelError, match='objectness, not classes'):
        ExplainModel(deformable, explainer=dict(algorithm='classwisesaliencymap',
                                                source='encoder'))
    explain = ExplainModel(deformable, explain_all_classes=True)  # auto: its attention
    with torch.no_grad():
        sample, = explain.test_step(det_batch(random_images(1, SMALL, SMALL)))
    assert sample.saliency_map.flatten(1).amax(1).min() > 0
    with pytest.raises(ValueError, match='source must be one of'):
        QueryClassMap(source='decoder')


def test_exporting_a_query_based_detector_is_refused_in_one_line(detr):
    from mmxai.deploy import ExplainExportWrapper
    from mmxai.utils import UnsupportedExportError
    with pytest.raises(UnsupportedExportError, match='DETR cannot be exported: its head reads'):
        ExplainExportWrapper(detr, 'activationmap')


def test_query_based_segmenters_are_refused_naming_why():
    # MaskFormer / Mask2Former: a mask and a class per query, no box decoder to read.
    cfg = load_config('mmdet::maskformer/maskformer_r50_ms-16xb1-75e_coco.py')
    cfg.model.backbone.depth = 18
    cfg.model.panoptic_head.in_channels = [64, 128, 256, 512]
    with pytest.raises(UnsupportedModelError, match='MaskFormer: its MaskFormerHead predicts a '
                                                    'mask and a class per learned query'):
        ExplainModel(build_model(cfg))
