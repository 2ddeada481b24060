"""CenterNet: its class maps are the scores, boxes and places its own prediction gives.

MMDetection's ``CenterNetHead.predict_by_feat``, with every cell of every class
kept (top-k over all of them, a local-maximum kernel of 1), is the reference.
"""
import copy

import pytest
import torch
from mmengine.config import ConfigDict

from mmxai.adapters import build_adapter
from mmxai.adapters.dense_heads import anchor_class_probabilities
from mmxai.explainers import DetClassProbabilityMap
from mmxai.geometry import to_original_image
from mmxai.models import ExplainModel
from mmxai.utils import UnsupportedModelError
from tests.helpers import build_model, det_batch, load_config, random_images

CONFIG = 'mmdet::centernet/centernet_r18_8xb16-crop512-140e_coco.py'
NUM_CLASSES = 4
SIZE = 128


@pytest.fixture(scope='module')
def centernet():
    cfg = load_config(CONFIG)
    cfg.model.bbox_head.num_classes = NUM_CLASSES
    return build_model(cfg).eval()


def _inputs(model, seed):
    data = model.data_preprocessor(det_batch(random_images(1, SIZE, SIZE, seed=seed)), False)
    # What CenterNet's own test pipeline (RandomCenterCropPad) records: no border here.
    meta = dict(data['data_samples'][0].metainfo, border=[0, SIZE, 0, SIZE],
                batch_input_shape=(SIZE, SIZE))
    return data['inputs'], meta


def _every_cell(head, outputs, meta):
    """MMDetection's prediction of every (cell, class): no top-k cut, no local-maximum test."""
    height, width = outputs[0][0].shape[-2:]
    kept = head.test_cfg
    head.test_cfg = ConfigDict(kept, topk=NUM_CLASSES * height * width, local_maximum_kernel=1)
    try:
        return head.predict_by_feat(*outputs, batch_img_metas=[meta], rescale=False)[0]
    finally:
        head.test_cfg = kept


#: Pixel centres of the (SIZE, SIZE) image.
PIXELS = torch.arange(SIZE, dtype=torch.float64) + 0.5


def _class_maps_of_outputs(model, replace, inputs):
    """The head's outputs as ``replace`` (a forward hook) makes them, their class maps and grid."""
    adapter, explainer = build_adapter(model), DetClassProbabilityMap()
    handle = model.bbox_head.register_forward_hook(replace)
    try:
        with torch.no_grad(), adapter.capture():
            outputs = model.bbox_head(model.extract_feat(inputs))
            maps = explainer(adapter)
            grid = explainer.map_grid(adapter, tuple(maps.shape[-2:]))
    finally:
        handle.remove()
    return outputs, maps, grid


def _on_image(class_map, grid):
    """One (h, w) class map on the (SIZE, SIZE) image it covers (no resize, no padding)."""
    meta = dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE))
    return to_original_image(class_map[None], meta, (SIZE, SIZE), grid)[0].double()


def _centre_of_mass(image_map):
    """(x, y) of a map's centre of mass, in pixels."""
    return (float((image_map.sum(0) * PIXELS).sum() / image_map.sum()),
            float((image_map.sum(1) * PIXELS).sum() / image_map.sum()))


def test_class_probabilities_are_the_scores_centernet_predicts(centernet):
    inputs, meta = _inputs(centernet, seed=3)
    with torch.no_grad():
        outputs = centernet.bbox_head(centernet.extract_feat(inputs))
        theirs = _every_cell(centernet.bbox_head, outputs, meta).scores
    ours = torch.cat([p[0].flatten() for p in anchor_class_probabilities(centernet.bbox_head,
                                                                         outputs)])
    torch.testing.assert_close(theirs.sort().values, ours.sort().values)


def test_each_cells_box_is_the_box_centernet_decodes(centernet):
    inputs, meta = _inputs(centernet, seed=4)
    adapter = build_adapter(centernet)
    with torch.no_grad(), adapter.capture():
        outputs = centernet.bbox_head(centernet.extract_feat(inputs))
        ours = torch.cat(adapter.prior_boxes(0))
    theirs = _every_cell(centernet.bbox_head, outputs, meta).bboxes
    assert len(theirs) == len(ours) * NUM_CLASSES
    distance = torch.cdist(theirs.double(), ours.double(), p=float('inf'))
    assert distance.amin(1).max() < 1e-3


@pytest.mark.parametrize('cell', [(0, 0), (9, 20), (31, 31)])
def test_a_cell_lands_where_centernet_puts_its_box_centre(centernet, cell):
    # One certain class at one cell, its offset the middle of the range training
    # targets use ([0, 1): where in the cell the object's centre fell): the map on
    # the image must peak, by centre of mass, at the centre MMDetection decodes.
    head = centernet.bbox_head
    inputs, meta = _inputs(centernet, seed=5)

    def one_hot(_module, _args, outputs):
        heatmap = torch.zeros_like(outputs[0][0])
        heatmap[:, 0, cell[0], cell[1]] = 1.0
        return [heatmap], [torch.zeros_like(outputs[1][0])], \
            [torch.full_like(outputs[2][0], 0.5)]

    outputs, maps, grid = _class_maps_of_outputs(centernet, one_hot, inputs)
    box = _every_cell(head, outputs, meta).bboxes[0]
    centre_x, centre_y = _centre_of_mass(_on_image(maps[0, 0], grid))
    assert centre_x == pytest.approx(float(box[0] + box[2]) / 2, abs=0.25)
    assert centre_y == pytest.approx(float(box[1] + box[3]) / 2, abs=0.25)


def test_class_and_per_box_maps_of_centernet(centernet):
    # Untrained, CenterNet predicts boxes of size 0 (refused: they overlap nothing);
    # sizes of 4 cells (16 px), as a trained head predicts sizes, give boxes to explain.
    centernet = copy.deepcopy(centernet)
    torch.nn.init.constant_(centernet.bbox_head.wh_head[-1].bias, 4.0)
    batch = det_batch(random_images(2, SIZE, SIZE, seed=6))
    for sample in batch['data_samples']:
        sample.set_metainfo(dict(border=[0, SIZE, 0, SIZE]))
    model = ExplainModel(centernet, explainer='classwisesaliencymap', explain_all_classes=True,
                         score_thr=0.0, box_targets=('predictions',))
    with torch.no_grad():
        samples = model.test_step(batch)
    for sample in samples:
        assert sample.saliency_map.shape == (NUM_CLASSES, SIZE // 4, SIZE // 4)
        assert 0 <= float(sample.saliency_map.min()) and float(sample.saliency_map.max()) <= 1
        records = sample.metainfo['explained_boxes']
        assert len(sample.box_saliency_map) == len(records) > 0
        # Each detection's own map peaks at least at its score (its heatmap cell).
        for record, score in zip(records, sample.pred_instances.scores.tolist()):
            assert record['evidence'] >= score * (1 - 1e-5)


CORNERNET = 'mmdet::cornernet/cornernet_hourglass104_8xb6-210e-mstest_coco.py'


@pytest.fixture(scope='module')
def cornernet():
    cfg = load_config(CORNERNET)
    cfg.model.backbone.update(stage_channels=(32, 32, 48, 48, 48, 64), feat_channel=32,
                              stage_blocks=(2, 2, 2, 2, 2, 4))
    cfg.model.bbox_head.update(num_classes=NUM_CLASSES, in_channels=32)
    return build_model(cfg).eval()


def test_corner_maps_peak_at_the_corners_cornernet_decodes(cornernet):
    # One certain top-left and one certain bottom-right corner of class 2 (equal
    # embeddings, offsets mid-cell): CornerNet decodes one certain box; the class
    # map must hold its two corners' probabilities exactly where that box has them.
    head = cornernet.bbox_head
    inputs, meta = _inputs(cornernet, seed=7)
    top_left, bottom_right, label = (5, 6), (20, 25), 2

    def corners(_module, _args, outputs):
        tl_heats, br_heats, tl_embs, br_embs, tl_offs, br_offs = (list(o) for o in outputs)
        for heats, cell in ((tl_heats, top_left), (br_heats, bottom_right)):
            heats[-1] = torch.full_like(heats[-1], -20.0)
            heats[-1][:, label, cell[0], cell[1]] = 20.0
        tl_embs[-1], br_embs[-1] = torch.zeros_like(tl_embs[-1]), torch.zeros_like(br_embs[-1])
        tl_offs[-1], br_offs[-1] = (torch.full_like(o[-1], 0.5) for o in (tl_offs, br_offs))
        return tl_heats, br_heats, tl_embs, br_embs, tl_offs, br_offs

    outputs, maps, grid = _class_maps_of_outputs(cornernet, corners, inputs)
    result = head.predict_by_feat(*outputs, batch_img_metas=[meta], rescale=False)[0]
    best = int(result.scores.argmax())
    assert int(result.labels[best]) == label and float(result.scores[best]) > 0.99
    x1, y1, x2, y2 = result.bboxes[best].tolist()
    assert float(maps[0, label].max()) > 0.99 and float(maps[0, :label].max()) < 1e-6
    original = _on_image(maps[0, label], grid)
    for x, y in ((x1, y1), (x2, y2)):  # each corner's blob, by its centre of mass
        near = original.clone()
        near[(PIXELS - y).abs() > 8, :] = 0
        near[:, (PIXELS - x).abs() > 8] = 0
        assert float(near.max()) > 0.9  # the corner's own probability, as strong as the other's
        assert _centre_of_mass(near) == pytest.approx((x, y), abs=0.25)


def test_cornernet_refuses_what_needs_a_box_per_cell_or_one_feature_map(cornernet):
    with pytest.raises(UnsupportedModelError, match='its cells are box corners'):
        ExplainModel(cornernet, box_targets=('predictions',))
    with pytest.raises(UnsupportedModelError, match='gradcam does not support CornerNet: its '
                                                    'corner heatmaps come from the last'):
        ExplainModel(cornernet, explainer='gradcam')
