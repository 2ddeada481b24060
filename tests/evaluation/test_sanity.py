"""Sanity checks on the demo models trained here (tests/conftest.py)."""
import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from scipy.stats import spearmanr

from mmxai.evaluation import SanityChecker, format_sanity_table
from mmxai.explainers import BaseExplainer
from mmxai.models import build_model
from tests.evaluation.plain_similarity import plain_ssim
from tests.helpers import check_ceiling


class GradientMagnitude(BaseExplainer):
    """The input image's own gradient magnitude: a map that ignores the model."""

    algorithm = 'gradient_magnitude'
    families = ('classification', 'detection')

    def explain(self, adapter, samples=None, targets=None):
        image = adapter.captured('backbone_input')
        dx, dy = torch.zeros_like(image), torch.zeros_like(image)
        dx[..., :, 1:] = image[..., :, 1:] - image[..., :, :-1]
        dy[..., 1:, :] = image[..., 1:, :] - image[..., :-1, :]
        return (dx ** 2 + dy ** 2).sum(1, keepdim=True).sqrt()


def _model_and_loader(config_path, checkpoint, num_images):
    cfg = Config.fromfile(config_path)
    model = build_model(cfg, checkpoint)
    cfg.test_dataloader.dataset.indices = num_images
    cfg.test_dataloader.batch_size = num_images
    return model, Runner.build_dataloader(cfg.test_dataloader)


def _check(model, loader, algorithms, **kwargs):
    checker = SanityChecker(model, algorithms, **kwargs)
    for data in loader:
        checker.process(data)
    report = checker.report()
    print(format_sanity_table(report))
    return checker, report


@pytest.fixture(scope='module')
def classifier_check(trained_classifier):
    model, loader = _model_and_loader(*trained_classifier, num_images=6)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    checker, report = _check(model, loader, [GradientMagnitude(), 'gradcam',
                                             'classwisesaliencymap', 'activationmap'],
                             page_images=6)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    return checker, report


def test_a_map_that_ignores_the_model_is_flagged_at_every_step(classifier_check):
    _, report = classifier_check
    result = report['results']['gradient_magnitude']
    assert [s['step'] for s in result['cascade']] == [
        'head', 'backbone.layer4', 'backbone.layer3', 'backbone.layer2', 'backbone.layer1',
        'backbone.conv1+backbone.bn1']
    for step in result['cascade']:
        assert step['maps'] == 6 and step['kept'] == 1.0 and step['flagged'], step
        assert step['spearman'] == pytest.approx(1.0) and step['ssim'] == pytest.approx(1.0)
    assert result['verdict'] == 'flag' and len(result['reasons']) == 6
    assert result['random_label'] is None  # class-agnostic: no random-label check


def test_gradcam_changes_when_the_head_is_random(classifier_check):
    _, report = classifier_check
    threshold = report['thresholds']['spearman']
    for label in ('gradcam', 'classwisesaliencymap'):  # Recipro-CAM on a classifier
        head = report['results'][label]['cascade'][0]
        assert head['step'] == 'head' and head['maps'] == 6
        assert head['spearman'] < threshold and not head['flagged'], label
        assert set(head['spearman_per_class']) <= {0, 1, 2}
        assert report['results'][label]['verdict'] == 'pass', label
    # The class-agnostic activation map reads the backbone only: the head changes nothing.
    activation_head = report['results']['activationmap']['cascade'][0]
    assert activation_head['spearman'] == pytest.approx(1.0) and activation_head['flagged']
    assert 'spearman_per_class' not in activation_head
    assert report['results']['activationmap']['verdict'] == 'flag'


def test_random_label_check_compares_another_class(classifier_check):
    checker, report = classifier_check
    for label in ('gradcam', 'classwisesaliencymap'):
        random_label = report['results'][label]['random_label']
        assert random_label['maps'] == 6  # 3 classes, one predicted: another always exists
    for example in checker.examples:
        assert example['other_class_index'] not in (None, example['class_index'])
        assert set(example['other_class_map']) == {'gradcam', 'classwisesaliencymap'}


def _plain_comparable(cells):
    """Bilinear resize (OpenCV, half-pixel centres) to 64x64, then min-max to [0, 1]."""
    resized = cv2.resize(cells.numpy().astype(np.float64), (64, 64),
                         interpolation=cv2.INTER_LINEAR)
    span = resized.max() - resized.min()
    return (resized - resized.min()) / span if span > 0 else np.zeros_like(resized)


def test_reported_numbers_equal_a_plain_computation(classifier_check):
    checker, report = classifier_check
    assert len(checker.examples) == 6  # every image: the means can be recomputed too
    for label in ('gradcam', 'classwisesaliencymap', 'activationmap'):
        per_step = []
        for example in checker.examples:
            trained, *randomised = example['maps'][label]
            assert trained.shape == (8, 8)  # the last ResNet stage at stride 32 of 256 px
            if trained.max() == trained.min():  # no picture to keep: left out
                assert np.isnan(example['spearman'][label]).all()
                continue
            # A randomised map that is constant has lost the picture: 0.
            spearman = [spearmanr(trained.flatten(), m.flatten()).statistic
                        if m.max() > m.min() else 0.0 for m in randomised]
            ssim = [plain_ssim(_plain_comparable(trained), _plain_comparable(m))
                    for m in randomised]
            assert example['spearman'][label] == pytest.approx(spearman, abs=1e-9), label
            assert example['ssim'][label] == pytest.approx(ssim, abs=1e-9), label
            per_step.append(spearman)
        means = np.mean(per_step, axis=0)
        reported = [s['spearman'] for s in report['results'][label]['cascade']]
        assert reported == pytest.approx(means.tolist(), abs=1e-9), label


def test_detector_cascade_random_label_and_drise_targets(trained_detector):
    model, loader = _model_and_loader(*trained_detector, num_images=3)
    checker, report = _check(
        model, loader, ['classwisesaliencymap', 'activationmap', 'gradcam',
                        dict(algorithm='drise', num_masks=8, batch_size=8)],
        cascade=['bbox_head', 'neck'])
    assert report['steps'] == [['bbox_head'], ['neck']]
    results = report['results']
    class_maps, activation = results['classwisesaliencymap'], results['activationmap']
    # Class maps are the head's probabilities, Grad-CAM differentiates them through the
    # head's convolutions: a random head changes both.
    for label in ('classwisesaliencymap', 'gradcam'):
        head = results[label]['cascade'][0]
        check_ceiling(f'sanity: {label} Spearman with the head random', head['spearman'], 0.5)
        check_ceiling(f'sanity: {label} share kept with the head random', head['kept'], 0.5)
        assert head['flagged'] == (head['spearman'] >= 0.5), label
    assert class_maps['random_label']['maps'] > 0
    # The activation map reads the FPN outputs: unchanged until the neck is random.
    assert activation['cascade'][0]['spearman'] == pytest.approx(1.0)
    assert activation['cascade'][0]['flagged'] and activation['verdict'] == 'flag'
    assert activation['cascade'][0]['maps'] == 3 and class_maps['cascade'][0]['maps'] >= 3
    # D-RISE explains the trained model's boxes at every step (same number of maps); a
    # class without a box has no D-RISE map, so it has no random-label check.
    drise = results['drise']
    assert drise['random_label'] is None
    assert [s['maps'] for s in drise['cascade']] == [class_maps['cascade'][0]['maps']] * 2


def test_no_predicted_class_means_no_maps_said_so(trained_detector):
    """A detector with no box above the threshold has nothing to compare: the verdict is
    'no maps' with the reason, never a pass."""
    model, loader = _model_and_loader(*trained_detector, num_images=2)
    _, report = _check(model, loader, ['classwisesaliencymap', 'activationmap'],
                       cascade=['bbox_head'], score_thr=1.01)
    for result in report['results'].values():
        assert result['verdict'] == 'no maps' and result['cascade'][0]['maps'] == 0
        assert result['reasons'] == ['no map to compare: the trained model predicted no class '
                                     'on these images (no box scoring at least 1.01)']


def test_mask_class_maps_have_no_random_label_check(trained_mask_rcnn):
    """A mask class map of a class the model did not detect is zero by design: compared
    with the predicted class's it would always pass, so the check is not made."""
    model, loader = _model_and_loader(*trained_mask_rcnn, num_images=2)
    _, report = _check(model, loader, ['classwisesaliencymap', 'activationmap'],
                       cascade=['roi_head'])
    class_maps = report['results']['classwisesaliencymap']
    assert class_maps['cascade'][0]['maps'] >= 2 and class_maps['random_label'] is None
    assert report['results']['activationmap']['random_label'] is None  # class-agnostic
