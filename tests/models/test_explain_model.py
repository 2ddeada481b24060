import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.runner import Runner

from mmxai.apis import inference_pipeline
from mmxai.models import ExplainModel
from mmxai.models import build_model as build_trained
from mmxai.utils import CheckpointMismatchError
from mmxai.utils.config import test_pipeline_of as pipeline_of
from tests.helpers import DET_DEMO_CONFIG, build_model, det_batch, load_config, random_images


@pytest.fixture(scope='module')
def atss():
    return build_model(load_config(DET_DEMO_CONFIG))


def _count_calls(module):
    counter = {'calls': 0}

    def count(*_):
        counter['calls'] += 1
    return counter, module.register_forward_hook(count)


def test_one_forward_pass_and_identical_predictions(atss):
    images = random_images(2, 256, 256, seed=7)
    with torch.no_grad():
        plain = atss.test_step(det_batch(images))
    explain = ExplainModel(atss, explainer='classwisesaliencymap', explain_all_classes=True)
    backbone, backbone_hook = _count_calls(atss.backbone)
    head, head_hook = _count_calls(atss.bbox_head)
    with torch.no_grad():
        explained = explain.test_step(det_batch(images))
    backbone_hook.remove()
    head_hook.remove()
    assert backbone['calls'] == 1 and head['calls'] == 1
    for a, b in zip(plain, explained):
        assert torch.equal(a.pred_instances.bboxes, b.pred_instances.bboxes)
        assert torch.equal(a.pred_instances.scores, b.pred_instances.scores)
        assert torch.equal(a.pred_instances.labels, b.pred_instances.labels)
        assert b.saliency_map.shape == (3, 32, 32)


def test_default_targets_are_classes_scoring_above_threshold(atss):
    explain = ExplainModel(atss, score_thr=0.0)
    sample = explain.test_step(det_batch(random_images(1, 256, 256)))[0]
    expected = sorted(set(sample.pred_instances.labels.tolist()))
    assert sample.explained_classes.tolist() == expected
    explain = ExplainModel(atss, score_thr=1.01)
    sample = explain.test_step(det_batch(random_images(1, 256, 256)))[0]
    assert sample.explained_classes.numel() == 0 and sample.saliency_map.shape[0] == 0


def test_target_classes_are_validated(atss):
    with pytest.raises(ValueError, match='out of range'):
        ExplainModel(atss, target_classes=[5])


def _explain_runner(config_path: str, checkpoint: str, work_dir: str) -> Runner:
    from mmxai.apis import explain_config
    cfg = explain_config(Config.fromfile(config_path), checkpoint, work_dir + '/out')
    cfg.work_dir = work_dir
    return Runner.from_cfg(cfg)


def test_checkpoint_of_another_model_is_an_error(trained_detector, tmp_path):
    config_path, _ = trained_detector
    cfg = Config.fromfile(config_path)
    cfg.model.bbox_head.num_classes = 5  # shapes differ from the 3-class config
    other = build_model(cfg)
    path = str(tmp_path / 'other.pth')
    torch.save({'state_dict': other.state_dict(), 'meta': {}}, path)
    with pytest.raises(CheckpointMismatchError, match=r'other\.pth.*shape mismatches'):
        _explain_runner(config_path, path, str(tmp_path / 'work')).test()


def test_checkpoint_with_missing_keys_is_an_error(trained_detector, tmp_path):
    config_path, checkpoint = trained_detector
    state = torch.load(checkpoint, weights_only=False)['state_dict']
    state.pop(next(iter(state)))
    path = str(tmp_path / 'partial.pth')
    torch.save({'state_dict': state, 'meta': {}}, path)
    with pytest.raises(CheckpointMismatchError, match=r'partial\.pth.*1 missing keys'):
        _explain_runner(config_path, path, str(tmp_path / 'work')).test()


def test_wrapper_is_installed_after_loading(trained_detector, tmp_path):
    """Weights inside the wrapper equal the checkpoint's (no key prefix problem)."""
    config_path, checkpoint = trained_detector
    runner = _explain_runner(config_path, checkpoint, str(tmp_path / 'work'))
    runner.test()
    assert isinstance(runner.model, ExplainModel)
    saved = torch.load(checkpoint, weights_only=False)['state_dict']
    loaded = runner.model.module.state_dict()
    for key, value in saved.items():
        assert torch.equal(loaded[key].cpu(), value), key


def test_one_score_threshold_reaches_every_explainer_that_uses_one(atss):
    # The run's threshold is the explainers' own (drise targets, gradient scores,
    # mask class maps); a second, different value among their options is refused.
    for algorithm in ('drise', 'gradcam', 'layercam'):
        for score_thr in (0.1, 0.6):
            explain = ExplainModel(atss, explainer=algorithm, score_thr=score_thr)
            assert explain.explainer.score_thr == explain.score_thr == score_thr
    assert ExplainModel(atss, explainer=dict(algorithm='drise', score_thr=0.2)).score_thr == 0.2
    with pytest.raises(ValueError, match='score_thr is given twice'):
        ExplainModel(atss, explainer=dict(algorithm='drise', score_thr=0.2), score_thr=0.6)


def test_score_threshold_changes_what_gradient_maps_are_made_of(trained_detector, shapes_detection):
    # On a trained detector the class score differentiated is the sum of the
    # probabilities of at least score_thr: 0.1 and 0.6 sum different positions.
    config_path, checkpoint = trained_detector
    cfg = Config.fromfile(config_path)
    model = build_trained(cfg, checkpoint)
    image = osp.join(shapes_detection, 'val', sorted(os.listdir(
        osp.join(shapes_detection, 'val')))[0])
    data = pseudo_collate([Compose(inference_pipeline(pipeline_of(cfg)))(
        dict(img_path=image))])
    maps = {}
    for score_thr in (0.1, 0.6):
        explain = ExplainModel(model, explainer='gradcam', score_thr=score_thr,
                               target_classes=[0, 1, 2])
        with torch.no_grad():
            maps[score_thr] = explain.test_step(data)[0].saliency_map
    assert not torch.allclose(maps[0.1], maps[0.6])


def test_a_prediction_detects_one_box_only():
    # One definition of "detected" (mmxai.boxes.match_detections, COCO's greedy match, as the
    # error analysis): one prediction overlapping two boxes of its class detects one of them.
    cfg = load_config(DET_DEMO_CONFIG)
    cfg.model.test_cfg.score_thr = 0.0  # a random model's boxes score ~0.01
    atss = build_model(cfg)
    images = random_images(1, 256, 256, seed=3)
    with torch.no_grad():
        plain = atss.test_step(det_batch(images))[0].pred_instances
    top = int(plain.scores.argmax())
    assert int((plain.scores >= plain.scores[top]).sum()) == 1
    box, label = plain.bboxes[top].tolist(), int(plain.labels[top])
    batch = det_batch(images)
    batch['data_samples'][0].set_metainfo(dict(target_boxes=[dict(bbox=box, label=label)] * 2))
    explain = ExplainModel(atss, score_thr=float(plain.scores[top]), box_targets=['given'])
    with torch.no_grad():
        records = explain.test_step(batch)[0].metainfo['explained_boxes']
    assert [r['match']['iou'] for r in records] == pytest.approx([1.0, 1.0])
    assert [r['detected'] for r in records] == [True, False]


def test_a_box_that_is_not_finite_is_refused_not_drawn_as_an_empty_map(monkeypatch):
    # Overflowing box regressions (untrained weights: YOLOv3's exp of its sizes) give
    # boxes at +-inf: a map of 0 for such a detection would be a plausible but wrong picture.
    from mmxai.utils import UnsupportedModelError
    cfg = load_config(DET_DEMO_CONFIG)
    cfg.model.test_cfg.score_thr = 0.0  # random weights: keep their boxes
    atss = build_model(cfg)
    predict_by_feat = atss.bbox_head.predict_by_feat

    def overflowing(*args, **kwargs):
        results = predict_by_feat(*args, **kwargs)
        results[0].bboxes[0, 3] = float('inf')
        results[0].bboxes[1, 2] = results[0].bboxes[1, 0]  # no width
        return results

    explain = ExplainModel(atss, score_thr=0.0, box_targets=['predictions'])
    monkeypatch.setattr(atss.bbox_head, 'predict_by_feat', overflowing)
    refusal = r'2 box.* not finite or have no area \(predictions 0, predictions 1\)'
    with torch.no_grad(), pytest.raises(UnsupportedModelError, match=refusal):
        explain.test_step(det_batch(random_images(1, 256, 256)))
    monkeypatch.undo()
    with torch.no_grad():  # the same model with finite boxes explains them
        sample = explain.test_step(det_batch(random_images(1, 256, 256)))[0]
    assert len(sample.metainfo['explained_boxes']) == len(sample.pred_instances) > 0
