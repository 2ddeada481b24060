"""Two-stage detectors (Sparse R-CNN too): the RoI scores kept are the ones it predicts from."""
import pytest
import torch
from mmdet.models.roi_heads import SparseRoIHead

from mmxai.adapters import TwoStageDetectorAdapter, build_adapter
from mmxai.models import ExplainModel
from mmxai.utils import UnsupportedModelError
from tests.helpers import build_model, det_batch, load_config, random_images

SIZE = 128
NUM_CLASSES = 3
TWO_STAGE_CONFIGS = {
    'faster_rcnn': 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    'cascade_rcnn': 'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py',
    'sparse_rcnn': 'mmdet::sparse_rcnn/sparse-rcnn_r50_fpn_1x_coco.py',
}


def two_stage(config):
    """A real two-stage config shrunk to ResNet-18, 3 classes, every detection kept."""
    cfg = load_config(config)
    cfg.model.backbone.update(depth=18, norm_eval=False)
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    heads = cfg.model.roi_head.bbox_head
    for head in heads if isinstance(heads, list) else [heads]:
        head.num_classes = NUM_CLASSES
    cfg.model.test_cfg.rcnn.score_thr = 0.0  # random weights: keep their detections
    model = build_model(cfg)
    if isinstance(model.roi_head, SparseRoIHead):
        _learned_proposals_inside_the_image(model)
    return model


def _learned_proposals_inside_the_image(model):
    """Sparse R-CNN as after training: its learned proposal boxes spread over the image
    (initialised, all of them are the whole image) and its box refinement settled (six
    random refinements send most RoIs off the image)."""
    generator = torch.Generator().manual_seed(0)
    boxes = model.rpn_head.init_proposal_bboxes.weight  # normalised (cx, cy, w, h)
    with torch.no_grad():
        boxes[:, :2] = 0.2 + 0.6 * torch.rand(len(boxes), 2, generator=generator)
        boxes[:, 2:] = 0.1 + 0.3 * torch.rand(len(boxes), 2, generator=generator)
        for head in model.roi_head.bbox_head:
            head.fc_reg.weight.zero_()
            head.fc_reg.bias.zero_()


@pytest.fixture(scope='module', params=sorted(TWO_STAGE_CONFIGS))
def detector(request):
    return two_stage(TWO_STAGE_CONFIGS[request.param])


def test_roi_probabilities_are_the_ones_the_roi_head_predicts_from(detector):
    # MMDetection's own RoI head, asked for raw results (rcnn_test_cfg=None, as its
    # test-time augmentation does), returns every proposal's class probabilities
    # (K + 1, background last) and its boxes, computed in the same call we capture.
    adapter = build_adapter(detector)
    assert isinstance(adapter, TwoStageDetectorAdapter)
    data = detector.data_preprocessor(det_batch(random_images(2, SIZE, SIZE)), False)
    metas = [s.metainfo for s in data['data_samples']]
    with torch.no_grad(), adapter.capture():
        features = detector.extract_feat(data['inputs'])
        proposals = detector.rpn_head.predict(features, data['data_samples'], rescale=False)
        raw = detector.roi_head.predict_bbox(features, metas, proposals, rcnn_test_cfg=None)
    rois, probabilities, bbox_pred = adapter.roi_class_probabilities()
    assert probabilities.shape == (len(rois), NUM_CLASSES)
    if isinstance(detector.roi_head, SparseRoIHead):
        _check_sparse_detections(adapter, rois, probabilities, bbox_pred, raw, metas)
        return
    for image, result in enumerate(raw):
        mine = rois[:, 0] == image
        assert mine.sum() == len(result.scores) > 0
        torch.testing.assert_close(probabilities[mine], result.scores[:, :NUM_CLASSES])
        # The RoIs are those the last stage regressed the boxes from: decoding them for
        # each class gives MMDetection's boxes.
        per_roi = 1 if adapter.box_stages[-1][1].reg_class_agnostic else NUM_CLASSES
        labels = torch.arange(per_roi).repeat(int(mine.sum()))
        decoded = adapter.regressed_boxes(rois[mine].repeat_interleave(per_roi, 0),
                                          bbox_pred[mine].repeat_interleave(per_roi, 0),
                                          labels, metas[image]['img_shape'])
        torch.testing.assert_close(decoded, result.bboxes.reshape(-1, 4))


def _check_sparse_detections(adapter, rois, probabilities, bbox_pred, results, metas):
    """Sparse R-CNN returns its best (query, class) pairs, not every RoI's scores: each of
    its detections is one of our RoIs, with the detection's score as that RoI's
    probability of the detection's class and the detection's box as the box it regresses to."""
    for image, result in enumerate(results):
        mine = torch.nonzero(rois[:, 0] == image)[:, 0]
        assert len(mine) == adapter.model.rpn_head.num_proposals
        decoded = adapter.regressed_boxes(rois[mine], bbox_pred[mine],
                                          torch.zeros(len(mine), dtype=torch.long),
                                          metas[image]['img_shape'])
        assert len(result.scores) == adapter.model.roi_head.test_cfg.max_per_img
        for score, label, box in zip(result.scores, result.labels, result.bboxes):
            row = int((probabilities[mine, label] - score).abs().argmin())
            torch.testing.assert_close(probabilities[mine[row], label], score)
            torch.testing.assert_close(decoded[row], box)
        # and they are the largest (query, class) probabilities of the image
        assert probabilities[mine].flatten().topk(len(result.scores)).values.min() \
            == pytest.approx(float(result.scores.min()))


def test_no_proposal_gives_no_scores_not_a_crash(detector):
    adapter = build_adapter(detector)
    with torch.no_grad(), adapter.capture():
        detector.extract_feat(torch.zeros(1, 3, SIZE, SIZE))
    assert adapter.roi_class_probabilities() is None


@pytest.mark.parametrize('config, reason', [
    ('mmdet::crowddet/crowddet-rcnn_r50_fpn_8xb2-30e_crowdhuman.py', 'several instances'),
    ('mmdet::tridentnet/tridentnet_r50-caffe_1x_coco.py', 'once per branch'),
])
def test_roi_heads_without_per_proposal_scores_are_refused_by_name(config, reason):
    model = build_model(load_config(config))
    with pytest.raises(UnsupportedModelError, match=reason):
        ExplainModel(model, explainer='classwisesaliencymap')
