"""Every ``ImageClassifier`` family of the installed MMPretrain explains right or is refused.

One config per family (see :mod:`tests.classifier_zoo`: the folder's smallest
classifier, random weights saved as a checkpoint and loaded through mmxai's
loader), two generated images, ``classwisesaliencymap``, ``activationmap``
and ``eigencam``. A method either gives maps of the right shape that change
with the image, or refuses in one line (``UserInputError``); any other
exception fails. With ``MMXAI_SUPPORT_JSON`` set, each family's outcome is
appended there as a JSON line (``tools/classifier_support_table.py`` renders them).
"""
import json
import os

import numpy as np
import pytest

from tests.classifier_zoo import IMAGE_SIZE, METHODS, classifier_families

FAMILIES = classifier_families()


def test_families_are_read_from_the_installed_package():
    names = [family for family, _ in FAMILIES]
    assert len(names) == len(set(names))
    # the families the issue counted in MMPretrain 1.2, spot-checked
    assert {'resnet', 'convnext', 'vision_transformer', 'swin_transformer_v2', 'csra',
            'hrnet'} <= set(names)
    assert 'mae' not in names  # self-supervised pre-training folders are not classifiers


def _record(family: str, outcomes: dict) -> None:
    path = os.environ.get('MMXAI_SUPPORT_JSON')
    if not path:
        return
    line = {method: 'ok' if 'maps' in outcome else outcome['refused']
            for method, outcome in outcomes.items()}
    with open(path, 'a', encoding='utf-8') as file:
        file.write(json.dumps(dict(family=family, methods=line)) + '\n')


def _min_max(maps: np.ndarray) -> np.ndarray:
    """Maps scaled to [0, 1] each, as files show them (a constant map becomes 0)."""
    low = maps.min(axis=(-2, -1), keepdims=True)
    span = maps.max(axis=(-2, -1), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0)


@pytest.mark.zoo
@pytest.mark.parametrize('family,config', FAMILIES, ids=[family for family, _ in FAMILIES])
def test_family_explains_or_refuses_in_one_line(family, config, tmp_path):
    from tests.classifier_zoo import explain_family
    outcomes = explain_family(config, str(tmp_path))
    assert set(outcomes) == set(METHODS)
    for method, outcome in outcomes.items():
        if 'refused' in outcome:
            assert '\n' not in outcome['refused'] and outcome['refused'].strip(), method
            continue
        maps = outcome['maps']
        for image_maps, classes in zip(maps, outcome['classes']):
            expected_classes = [-1] if method != 'classwisesaliencymap' else [0]
            assert classes.tolist() == expected_classes, method
            if method == METHODS[0] or image_maps.shape[-2:] == IMAGE_SIZE:
                assert image_maps.shape == (1, *IMAGE_SIZE), method  # the user path
            else:  # a class-agnostic map of the captured pass: at a feature resolution
                assert image_maps.shape[0] == 1 and min(image_maps.shape[-2:]) > 1, method
            assert np.isfinite(image_maps).all(), method
        first, second = (_min_max(m) for m in maps)
        assert first.max() > 0 and second.max() > 0, f'{method}: constant maps'
        # random deep networks give weak input dependence; any is enough, none is a bug
        assert not np.allclose(first, second, rtol=0, atol=1e-6), f'{method}: same map twice'
        error = outcome['logits_error']
        if error is not None:  # the mosaics' path after the feature map is the model's own
            assert error < 1e-5, f'{method}: rebuilt logits differ by {error}'
    _record(family, outcomes)  # only what passed


@pytest.mark.parametrize('family', ['efficientformer', 'revvit', 'eva02'])
def test_token_models_score_mosaics_as_the_model_does(family, tmp_path):
    """The token paths outside the zoo tier: a (B, C, h*w) output before a sequence
    pooling neck (EfficientFormer), a ViT-like backbone without ``ln2`` (RevViT) and
    averaged tokens of blocks ViT Recipro-CAM does not read (EVA02)."""
    from tests.classifier_zoo import explain_family
    outcome = explain_family(dict(FAMILIES)[family], str(tmp_path),
                             methods=('classwisesaliencymap',))['classwisesaliencymap']
    assert 'maps' in outcome, outcome
    assert outcome['logits_error'] is not None and outcome['logits_error'] < 1e-5
    first, second = (_min_max(m) for m in outcome['maps'])
    assert not np.allclose(first, second, rtol=0, atol=1e-6)
