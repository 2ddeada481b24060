"""Two-stage detectors: Mask R-CNN class maps from its soft masks, D-RISE for Faster R-CNN."""
import pytest
import torch

from mmxai.explainers import DRISE, MaskClassMap
from mmxai.explainers.mask_class_map import paste_masks
from mmxai.models import ExplainModel
from mmxai.utils import UnsupportedModelError
from tests.helpers import build_model, det_batch, load_config, random_images

SIZE = 128


def _two_stage(config):
    cfg = load_config(config)
    cfg.model.backbone.update(depth=18, norm_eval=False)
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    cfg.model.roi_head.bbox_head.num_classes = 3
    if 'mask_head' in cfg.model.roi_head:
        cfg.model.roi_head.mask_head.num_classes = 3
    cfg.model.test_cfg.rcnn.score_thr = 0.0  # random weights: keep their detections
    return build_model(cfg)


@pytest.fixture(scope='module')
def mask_rcnn():
    return _two_stage('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')


def test_paste_puts_a_mask_exactly_in_its_box():
    canvas = paste_masks(torch.ones(1, 7, 7), torch.tensor([[4.0, 2.0, 12.0, 6.0]]), (10, 16))
    assert canvas[0, 3:6, 5:12].min() > 0.99  # inside the box
    assert float(canvas[0, 2, 5:12].min()) == pytest.approx(0.5)  # on its edge: half (bilinear)
    box = canvas[0, 2:7, 4:13]  # edges included, at half
    assert float(canvas[0].sum()) == pytest.approx(float(box.sum()), abs=1e-4)  # none outside


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


def test_faster_rcnn_gets_drise_and_clear_errors_for_the_rest():
    model = _two_stage('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    for algorithm in ('classwisesaliencymap', 'gradcam'):
        with pytest.raises(UnsupportedModelError, match=r'FasterRCNN.*drise'):
            ExplainModel(model, explainer=algorithm)
    explain = ExplainModel(model, explainer=dict(algorithm='drise', num_masks=16,
                                                 score_thr=0.0), target_classes=[0])
    assert isinstance(explain.explainer, DRISE)
    with torch.no_grad():
        out = explain.test_step(det_batch(random_images(1, SIZE, SIZE)))
    assert out[0].saliency_map.shape == (1, SIZE // 4, SIZE // 4)
    assert torch.isfinite(out[0].saliency_map).all()
