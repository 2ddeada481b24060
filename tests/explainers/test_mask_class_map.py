"""Two-stage detectors: Mask R-CNN class maps from its soft masks, D-RISE for Faster R-CNN."""
import pytest
import torch
import torch.nn.functional as F

from mmxai.explainers import DRISE, MaskClassMap
from mmxai.geometry import paste_masks
from mmxai.models import ExplainModel
from mmxai.utils import UnsupportedModelError
from tests.helpers import build_model, det_batch, load_config, random_images

SIZE = 128


def _two_stage(config):
    cfg = load_config(config)
    cfg.model.backbone.update(depth=18, norm_eval=False)
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    roi_head = cfg.model.roi_head
    for key in ('bbox_head', 'mask_head'):  # one head, or one per cascade stage
        heads = roi_head.get(key)
        for head in heads if isinstance(heads, list) else [heads] if heads else []:
            head.num_classes = 3
    cfg.model.test_cfg.rcnn.score_thr = 0.0  # random weights: keep their detections
    return build_model(cfg)


@pytest.fixture(scope='module')
def mask_rcnn():
    return _two_stage('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')


def test_paste_puts_masks_in_their_boxes_as_mmdetection_does():
    # MMDetection's own paste (FCNMaskHead) defines the convention: each canvas
    # pixel reads the mask at its centre, bilinear, 0 outside the box.
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(3, 7, 7, generator=generator)
    boxes = torch.tensor([[4.0, 2.0, 12.0, 6.0], [0.5, 1.5, 9.25, 9.75], [10.0, 0.0, 16.0, 3.0]])
    expected, _ = _do_paste_mask(masks[:, None], boxes, 10, 16, skip_empty=False)
    torch.testing.assert_close(paste_masks(masks, boxes, (10, 16)), expected)


def test_mask_rcnn_class_maps_average_its_soft_masks(mask_rcnn):
    explain = ExplainModel(mask_rcnn, explainer=dict(algorithm='classwisesaliencymap',
                                                     score_thr=0.0), explain_all_classes=True)
    assert isinstance(explain.explainer, MaskClassMap)
    with torch.no_grad():
        data = explain.data_preprocessor(det_batch(random_images(2, SIZE, SIZE)))
        with explain.adapter.capture():
            samples = mask_rcnn.predict(data['inputs'], data['data_samples'])
        maps = explain.explainer(explain.adapter, samples)
    assert maps.shape == (2, 3, SIZE // 4, SIZE // 4)
    masks, rois = explain.adapter.soft_masks()
    assert masks.shape[1:] == (3, 28, 28) and len(rois) == sum(len(s.pred_instances)
                                                                 for s in samples)
    # Independently: image 0, its most frequent class; the mean of its pasted masks.
    first = samples[0].pred_instances
    label = int(first.labels.mode().values)
    rows = torch.nonzero((rois[:, 0] == 0) & (torch.cat(
        [s.pred_instances.labels for s in samples]) == label))[:, 0]
    expected = paste_masks(masks[rows, label], rois[rows, 1:] / 4, (SIZE // 4,) * 2).mean(0)
    torch.testing.assert_close(maps[0, label], expected)
    assert 0 <= maps.min() and maps.max() <= 1
    with torch.no_grad():  # end to end through the test step
        out = explain.test_step(det_batch(random_images(1, SIZE, SIZE)))
    assert out[0].saliency_map.shape == (3, SIZE // 4, SIZE // 4)


def test_faster_rcnn_gets_drise_and_a_clear_error_for_gradients():
    model = _two_stage('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    with pytest.raises(UnsupportedModelError, match='gradcam does not support two_stage'):
        ExplainModel(model, explainer='gradcam')
    explain = ExplainModel(model, explainer=dict(algorithm='drise', num_masks=4,
                                                 score_thr=0.0), target_classes=[0])
    assert isinstance(explain.explainer, DRISE)
    with torch.no_grad():
        out = explain.test_step(det_batch(random_images(1, SIZE, SIZE)))
    assert out[0].saliency_map.shape == (1, SIZE // 4, SIZE // 4)
    assert torch.isfinite(out[0].saliency_map).all()


@pytest.mark.parametrize('config', ['mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py',
                                    'mmdet::htc/htc_r50_fpn_1x_coco.py',
                                    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'])
def test_class_maps_are_the_detectors_own_soft_masks(config):
    # MMDetection itself returns the soft masks it predicts (pasted, 0..255) when
    # mask_thr_binary < 0: per class, their mean is what the class map must show.
    model = _two_stage(config)
    model.roi_head.test_cfg.mask_thr_binary = -1
    explain = ExplainModel(model, explainer='classwisesaliencymap', score_thr=0.0,
                           explain_all_classes=True)
    with torch.no_grad():
        data = explain.data_preprocessor(det_batch(random_images(1, SIZE, SIZE, seed=3)))
        with explain.adapter.capture():
            samples = model.predict(data['inputs'], data['data_samples'], rescale=False)
        maps = explain.explainer(explain.adapter, samples)
    instances = samples[0].pred_instances
    assert len(instances) > 0
    soft = instances.masks.float() / 255  # (N, SIZE, SIZE) at the network input
    for label in instances.labels.unique().tolist():
        expected = F.avg_pool2d(soft[instances.labels == label].mean(0)[None, None], 4)[0, 0]
        assert (maps[0, label] - expected).abs().mean() < 0.01, label
        assert (maps[0, label] - expected).abs().max() < 0.1, label


def test_mask_head_that_did_not_run_is_an_error_not_a_blank_map(mask_rcnn):
    explain = ExplainModel(mask_rcnn, explainer='classwisesaliencymap', score_thr=0.0)
    with torch.no_grad():
        data = explain.data_preprocessor(det_batch(random_images(1, SIZE, SIZE)))
        samples = mask_rcnn.predict(data['inputs'], data['data_samples'])  # no capture
        with explain.adapter.capture():
            mask_rcnn.extract_feat(data['inputs'])  # the features ran, the mask head did not
        assert len(samples[0].pred_instances) > 0
        with pytest.raises(UnsupportedModelError, match='mask head .* did not run'):
            explain.explainer(explain.adapter, samples)


def test_score_threshold_decides_which_masks_make_the_map(mask_rcnn):
    # Random weights score their boxes ~1/4: 0.1 keeps them in the maps, 0.6 none.
    data = det_batch(random_images(1, SIZE, SIZE, seed=5))
    maps = {}
    for score_thr in (0.1, 0.6):
        explain = ExplainModel(mask_rcnn, score_thr=score_thr, explain_all_classes=True)
        assert explain.explainer.score_thr == score_thr
        with torch.no_grad():
            sample = explain.test_step(data)[0]
        assert (sample.pred_instances.scores >= 0.1).any()
        assert not (sample.pred_instances.scores >= 0.6).any()
        maps[score_thr] = sample.saliency_map
    assert maps[0.1].amax() > 0.1 and maps[0.6].abs().amax() == 0


def test_box_maps_average_the_masks_of_the_detections_that_overlap_the_box(mask_rcnn):
    # Per predicted box: the mean pasted soft mask of its class's detections with
    # IoU >= 0.5 (torchvision's IoU here), itself included.
    from torchvision.ops import box_iou
    explain = ExplainModel(mask_rcnn, score_thr=0.0, box_targets=['predictions'])
    with torch.no_grad():
        sample = explain.test_step(det_batch(random_images(1, SIZE, SIZE, seed=3)))[0]
        masks, rois = explain.adapter.soft_masks()
    records = sample.metainfo['explained_boxes']
    predictions = sample.pred_instances
    assert len(records) == len(predictions) > 1
    boxes, labels = rois[:, 1:], predictions.labels
    pasted = paste_masks(masks[torch.arange(len(masks)), labels], boxes / 4, (SIZE // 4,) * 2)
    overlapping = (box_iou(boxes, boxes) >= 0.5) & (labels[:, None] == labels[None])
    for k in range(len(records)):
        expected = pasted[overlapping[k]].mean(0)
        torch.testing.assert_close(sample.box_saliency_map[k], expected)
        assert records[k]['evidence'] == pytest.approx(float(expected.max()), abs=1e-6)


def test_queryinst_masks_are_refused_naming_why():
    # QueryInst picks each detection's mask inside predict_mask; the masks its mask head
    # outputs are the learned proposals', so reading them per detection would be wrong.
    cfg = load_config('mmdet::queryinst/queryinst_r50_fpn_1x_coco.py')
    cfg.model.backbone.update(depth=18, norm_eval=False)
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    model = build_model(cfg)
    with pytest.raises(UnsupportedModelError, match='runs its mask head on every learned '
                       'proposal.*; activationmap, drise and eigencam work for it'):
        ExplainModel(model, explainer='classwisesaliencymap')
