"""DETR-style detectors: the queries, attention and encoder scores the adapter reads are its own.

Real MMDetection configs (DETR, Conditional DETR, DINO) shrunk to ResNet-18,
two encoder and decoder layers, 30 queries and 3 classes, random weights.
Sizes are multiples of 64 (DINO's coarsest stride), so that padding a batch
changes no feature of the smaller image.
"""
import math

import pytest
import torch

from mmxai.adapters import QueryDetectorAdapter, build_adapter
from mmxai.explainers import QueryClassMap
from tests.helpers import build_model, det_batch, load_config, random_images

NUM_CLASSES, NUM_QUERIES = 3, 30
SMALL, LARGE = 256, 320
CONFIGS = {
    'detr': 'mmdet::detr/detr_r18_8xb2-500e_coco.py',
    'conditional_detr': 'mmdet::conditional_detr/conditional-detr_r50_8xb2-50e_coco.py',
    'dino': 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
}


def query_detector(name):
    """A real DETR-style config, shrunk."""
    cfg = load_config(CONFIGS[name])
    model = cfg.model
    if model.backbone.depth == 50:
        model.backbone.depth = 18
        channels = model.neck.in_channels
        model.neck.in_channels = [c // 4 for c in channels]
    model.bbox_head.num_classes = NUM_CLASSES
    model.num_queries = NUM_QUERIES
    model.encoder.num_layers = model.decoder.num_layers = 2
    model.test_cfg.max_per_img = 20
    return build_model(cfg)


@pytest.fixture(scope='module', params=sorted(CONFIGS))
def detector(request):
    return query_detector(request.param)


def predict(detector, images):
    """The detector's own prediction under the adapter's capture; the adapter and batch."""
    adapter = build_adapter(detector)
    data = detector.data_preprocessor(det_batch(images), False)
    with torch.no_grad(), adapter.capture():
        samples = detector.predict(data['inputs'], data['data_samples'])
    return adapter, data, samples


def small_and_large():
    return [random_images(1, SMALL, SMALL, seed=1)[0], random_images(1, LARGE, LARGE, seed=2)[0]]


def test_cross_attention_is_a_distribution_over_the_unpadded_tokens(detector):
    adapter, data, _ = predict(detector, small_and_large())
    assert isinstance(adapter, QueryDetectorAdapter)
    assert data['inputs'].shape[-2:] == (LARGE, LARGE)  # the small image is padded
    attention = adapter.cross_attention()
    assert attention.shape[:2] == (2, NUM_QUERIES) and (attention >= 0).all()
    totals = attention.sum(-1)
    if adapter.token_shapes().shape[0] == 1:  # softmax attention: rows sum to 1
        torch.testing.assert_close(totals, torch.ones_like(totals))
    else:  # deformable: points outside the levels, or on padding, lose their weight
        assert (totals <= 1 + 1e-5).all() and (totals > 0).all()
    # The small image's padded tokens (right and bottom of every level) get nothing.
    for level in adapter.token_levels(attention):
        height, width = level.shape[-2:]
        rows, cols = height * SMALL // LARGE, width * SMALL // LARGE
        assert level[0, :, rows:].abs().max() == 0 and level[0, :, :, cols:].abs().max() == 0
        assert level[0, :, :rows, :cols].sum() > 0 and level[1, :, rows:].sum() > 0


@pytest.mark.parametrize('name', ['detr', 'conditional_detr'])
def test_an_image_alone_and_padded_in_a_batch_gives_the_same_evidence(name):
    # Not DINO: the model itself predicts differently in a padded batch (its neck's
    # GroupNorm takes statistics over the padding too, and it may pick padded tokens,
    # whose zeroed memory has a constant score, as queries).
    detector = query_detector(name)
    images = small_and_large()
    alone, _, alone_samples = predict(detector, images[:1])
    batched, _, _ = predict(detector, images)
    torch.testing.assert_close(batched.query_class_probabilities()[:1],
                               alone.query_class_probabilities(), atol=1e-4, rtol=1e-4)
    mine, = alone.token_levels(alone.cross_attention())
    padded, = batched.token_levels(batched.cross_attention())
    height, width = mine.shape[-2:]
    torch.testing.assert_close(padded[:1, :, :height, :width], mine, atol=1e-4, rtol=1e-4)
    explainer = QueryClassMap()
    maps_alone = explainer.explain(alone, alone_samples)
    maps_batched = explainer.explain(batched)
    assert maps_alone.shape[-2:] == (height, width)
    torch.testing.assert_close(maps_batched[:1, :, :height, :width], maps_alone,
                               atol=1e-4, rtol=1e-4)


def test_query_probabilities_and_boxes_are_the_heads_predictions():
    # DETR's published rule: softmax over K + 1 with the last column "no object"
    # dropped; boxes (cx, cy, w, h) relative to the image, scaled to pixels.
    detector = query_detector('detr')
    kept = {}
    detector.bbox_head.register_forward_hook(lambda m, a, out: kept.__setitem__('out', out))
    adapter, data, samples = predict(detector, random_images(1, SMALL, SMALL))
    scores, boxes = kept['out'][0][-1][0], kept['out'][1][-1][0]
    probabilities = torch.exp(scores) / torch.exp(scores).sum(-1, keepdim=True)
    torch.testing.assert_close(adapter.query_class_probabilities()[0],
                               probabilities[:, :NUM_CLASSES])
    cx, cy, w, h = boxes.unbind(-1)
    expected = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * SMALL
    torch.testing.assert_close(adapter.query_boxes(0, (SMALL, SMALL)), expected.clamp(0, SMALL))
    # Each predicted box is one query's box with that query's probability as its score.
    predicted = samples[0].pred_instances
    query_boxes = adapter.query_boxes(0, (SMALL, SMALL))
    for box, label, score in zip(predicted.bboxes, predicted.labels, predicted.scores):
        query = (query_boxes - box).abs().sum(-1).argmin()
        torch.testing.assert_close(adapter.query_class_probabilities()[0, query, label], score)


def test_dino_queries_are_seeded_from_the_top_tokens_of_the_encoder_map():
    # With the encoder's box branch zeroed, DINO seeds each query at its token's own
    # proposal (Deformable DETR, sec. 4.1): centre ((j + 0.5) / w_l, (i + 0.5) / h_l),
    # width and height 0.05 * 2 ** l. So the decoder's initial reference points name
    # the tokens DINO picked by their class scores; they must be the top tokens of
    # the encoder's class map, at the level and cell where the map puts them.
    detector = query_detector('dino')
    branch = detector.bbox_head.reg_branches[detector.decoder.num_layers]
    with torch.no_grad():
        branch[-1].weight.zero_()
        branch[-1].bias.zero_()
    seeded = {}
    detector.decoder.register_forward_pre_hook(
        lambda m, args, kwargs: seeded.__setitem__('refs', kwargs['reference_points']),
        with_kwargs=True)
    adapter, _, _ = predict(detector, random_images(1, SMALL, LARGE))  # h != w: row-major
    levels = adapter.token_levels(adapter.encoder_class_probabilities().transpose(1, 2))
    picked = set()
    for cx, cy, w, _ in seeded['refs'][0].tolist():
        level = round(math.log2(w / 0.05))
        height, width = levels[level].shape[-2:]
        picked.add((level, round(cy * height - 0.5), round(cx * width - 0.5)))
    cells = [(score, (level, i, j)) for level, values in enumerate(levels)
             for (i, j), score in zip(torch.cartesian_prod(
                 torch.arange(values.shape[-2]), torch.arange(values.shape[-1])).tolist(),
                 values[0].amax(0).flatten().tolist())]
    top = {cell for _, cell in sorted(cells, reverse=True)[:NUM_QUERIES]}
    assert len(picked) == NUM_QUERIES and picked == top
