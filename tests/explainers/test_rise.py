"""RISE and D-RISE: deterministic masks, the aggregation's known answer, real models."""
import pytest
import torch

from mmxai.explainers import DRISE, RISE, RandomMaskExplainer
from mmxai.explainers.rise import rise_masks
from mmxai.models import ExplainModel
from mmxai.utils import UnsupportedModelError
from tests.helpers import (
    CLS_DEMO_CONFIG,
    DET_DEMO_CONFIG,
    build_model,
    cls_batch,
    det_batch,
    load_config,
    random_images,
)


def _masks(seed, num=64, shape=(48, 40)):
    return torch.cat(list(rise_masks(num, shape, grid_size=6, keep_prob=0.5, seed=seed,
                                     batch_size=10, device=torch.device('cpu'))))


def test_masks_are_deterministic_for_a_seed_and_keep_about_p():
    first, again, other = _masks(0), _masks(0), _masks(1)
    assert first.shape == (64, 48, 40)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert 0 <= first.min() and first.max() <= 1
    assert abs(float(first.mean()) - 0.5) < 0.08
    assert len(set(first.flatten(1).sum(1).tolist())) > 32  # random shifts: all different


class _RegionScore(RandomMaskExplainer):
    """A model that sees only a region: its score is the share of it kept."""

    name = 'region'
    tasks = ('classification',)
    region = (slice(8, 16), slice(40, 56))

    def mask_weights(self, adapter, masked, image, samples, classes):
        return masked[:, 0, self.region[0], self.region[1]].mean((1, 2))[:, None]


class _Inputs:
    num_classes = 1

    def captured(self, name):
        return torch.ones(1, 3, 64, 64)


def test_the_map_peaks_on_what_the_score_depends_on():
    explainer = _RegionScore(num_masks=400, grid_size=8, seed=3)
    maps = explainer(_Inputs())
    assert maps.shape == (1, 1, 16, 16)  # a quarter of the input
    y, x = divmod(int(maps[0, 0].argmax()), 16)
    assert 8 // 4 <= y < 16 // 4 and 40 // 4 <= x < 56 // 4
    inside = maps[0, 0, 2:4, 10:14].mean()
    assert inside > 5 * maps[0, 0, 8:, :8].abs().mean()  # far away: about 0, not noise


def test_rise_on_a_classifier_is_deterministic_and_only_for_targets():
    model = build_model(load_config(CLS_DEMO_CONFIG))
    explain = ExplainModel(model, explainer=dict(algorithm='rise', num_masks=64, seed=5),
                           target_classes=[1])
    with torch.no_grad():
        first = explain.test_step(cls_batch(random_images(2, 128, 128)))
        again = explain.test_step(cls_batch(random_images(2, 128, 128)))
    assert first[0].saliency_map.shape == (1, 32, 32)
    for a, b in zip(first, again):
        assert torch.equal(a.saliency_map, b.saliency_map)
    assert isinstance(explain.explainer, RISE)


def test_drise_explains_any_detector_and_rise_no_detector():
    model = build_model(load_config(DET_DEMO_CONFIG))
    explain = ExplainModel(model, explainer=dict(algorithm='drise', num_masks=32,
                                                 score_thr=0.0), explain_all_classes=True)
    assert isinstance(explain.explainer, DRISE)
    with torch.no_grad():
        samples = explain.test_step(det_batch(random_images(1, 128, 128)))
    assert samples[0].saliency_map.shape == (3, 32, 32)
    assert torch.isfinite(samples[0].saliency_map).all()
    with pytest.raises(UnsupportedModelError, match='rise does not support detection'):
        ExplainModel(model, explainer='rise')
