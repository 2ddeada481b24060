"""Conformer: its conv branch's last map is shown; methods that need the scores to come
from that map alone refuse in one line (its transformer branch also scores the classes)."""
import re

import pytest
import torch

from mmxai.models import ExplainModel
from mmxai.utils import UnsupportedModelError
from tests.helpers import build_model, cls_batch, load_config, random_images

SIZE = 128


@pytest.fixture(scope='module')
def conformer():
    cfg = load_config('mmpretrain::conformer/conformer-tiny-p16_8xb128_in1k.py')
    cfg.model.backbone.update(arch=dict(embed_dims=64, depths=6, num_heads=4, channel_ratio=1),
                              base_channels=16)
    cfg.model.head.update(num_classes=3, in_channels=[64, 64])
    cfg.model.train_cfg = None
    return build_model(cfg)


def test_class_agnostic_maps_show_the_last_conv_map(conformer):
    backbone = conformer.backbone
    last_stage = getattr(backbone, f'conv_trans_{backbone.fin_stage - 1}')
    seen = {}
    hook = last_stage.register_forward_hook(lambda _m, _a, out: seen.update(conv=out[0]))
    images = random_images(2, SIZE, SIZE, seed=1)
    try:
        explain = ExplainModel(conformer, explainer='activationmap')
        with torch.no_grad():
            maps = torch.stack([s.saliency_map for s in explain.test_step(cls_batch(images))])
    finally:
        hook.remove()
    conv = seen['conv']  # (B, C, h, w): the map Conformer pools for its conv head
    assert maps.shape == (2, 1, *conv.shape[-2:]) and conv.shape[-1] == SIZE // 32
    by_mean, by_norm = conv.mean(1, keepdim=True), conv.norm(dim=1, keepdim=True)
    assert torch.allclose(maps, by_mean) or torch.allclose(maps, by_norm)
    explain = ExplainModel(conformer, explainer='eigencam')
    with torch.no_grad():
        maps = torch.stack([s.saliency_map for s in explain.test_step(cls_batch(images))])
    assert maps.shape == (2, 1, *conv.shape[-2:]) and torch.isfinite(maps).all()


@pytest.mark.parametrize('algorithm, message', [
    ('classwisesaliencymap', 'classwisesaliencymap does not support ImageClassifier: Conformer '
                             'also scores its classes from a transformer branch'),
    ('gradcam', 'gradcam does not support ImageClassifier: Conformer also scores its classes '
                'from a transformer branch.*name a target_layer'),
])
def test_methods_that_score_from_the_map_alone_refuse(conformer, algorithm, message):
    with pytest.raises(UnsupportedModelError, match=message) as refusal:
        ExplainModel(conformer, explainer=algorithm)
    # The refusal names the methods that do explain the model, and they do.
    listed = re.search(r'; ([a-z, ]+) work for it$', str(refusal.value)).group(1)
    alternatives = re.split(r', | and ', listed)
    assert {'activationmap', 'eigencam', 'rise'} <= set(alternatives)
    assert algorithm not in alternatives and 'gradcampp' not in alternatives
    images = cls_batch(random_images(1, SIZE, SIZE, seed=2))
    for alternative in alternatives:
        explainer = alternative if alternative != 'rise' else dict(algorithm='rise', num_masks=8)
        with torch.no_grad():
            (sample,) = ExplainModel(conformer, explainer=explainer).test_step(images)
        assert torch.isfinite(sample.saliency_map).all() and sample.saliency_map.std() > 0
