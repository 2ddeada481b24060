"""Cascade steps and re-initialisation on the demo models' real configs (random weights)."""
import pytest
import torch
from torch import nn

from mmxai.evaluation import CascadeError, cascade_models, default_cascade, randomize_modules
from tests.helpers import CLS_DEMO_CONFIG, DET_DEMO_CONFIG, build_model, load_config


@pytest.fixture(scope='module')
def classifier():
    return build_model(load_config(CLS_DEMO_CONFIG))


@pytest.fixture(scope='module')
def detector():
    return build_model(load_config(DET_DEMO_CONFIG))


def test_default_cascade_goes_from_the_head_down(classifier, detector):
    # The classifier's global average pooling neck has no parameters: no step.
    assert default_cascade(classifier) == [
        ['head'], ['backbone.layer4'], ['backbone.layer3'], ['backbone.layer2'],
        ['backbone.layer1'], ['backbone.conv1', 'backbone.bn1']]
    assert default_cascade(detector) == [
        ['bbox_head'], ['neck'], ['backbone.layer4'], ['backbone.layer3'], ['backbone.layer2'],
        ['backbone.layer1'], ['backbone.conv1', 'backbone.bn1']]


def test_a_detr_style_detector_starts_with_its_head():
    # DINO defines bbox_head before its transformer and a training-only denoising
    # query generator last: randomised first, that no-op step would flag every method.
    dino = build_model(load_config('configs/demo/dino_tiny_shapes.py'))
    steps = default_cascade(dino)
    assert steps[0] == ['bbox_head']
    assert steps.index(['decoder']) < steps.index(['encoder']) < steps.index(['neck'])


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_randomize_redraws_exactly_the_named_modules(detector):
    models = cascade_models(detector, [['bbox_head'], ['neck', 'backbone.layer4']], seed=3)
    assert models[0] is detector
    before = _state(detector)
    head, after_head, after_both = (_state(m) for m in models)
    norms = _norm_keys(detector)
    assert all(torch.equal(before[k], head[k]) for k in before)  # the trained model is kept
    for key in before:
        in_head = key.startswith('bbox_head.')
        in_step_2 = key.startswith(('neck.', 'backbone.layer4.'))
        if 'num_batches_tracked' in key:
            continue
        # Every value of a randomised module is re-drawn (GN/BN weights become 1, biases 0:
        # compare tensors that were not already at those values).
        changed_1 = not torch.equal(before[key], after_head[key])
        changed_2 = not torch.equal(after_head[key], after_both[key])
        assert changed_1 == (in_head and not _at_default(before[key], key, norms)), key
        assert changed_2 == (in_step_2 and not _at_default(after_head[key], key, norms)), key
        if in_head:  # cumulative: a later step keeps the earlier random values
            assert torch.equal(after_head[key], after_both[key]), key


def _norm_keys(model):
    return {f'{name}.{leaf}' for name, module in model.named_modules()
            if isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm))
            for leaf in ('weight', 'bias', 'running_mean', 'running_var')}


def _at_default(tensor, key, norm_keys):
    """Whether a norm layer's parameter or statistic already holds its reset value."""
    value = {'weight': 1.0, 'bias': 0.0, 'running_mean': 0.0, 'running_var': 1.0}
    return key in norm_keys and bool((tensor == value[key.rsplit('.', 1)[-1]]).all())


def test_randomize_is_reproducible_and_leaves_the_global_rng_alone(classifier):
    import copy
    first, second = copy.deepcopy(classifier), copy.deepcopy(classifier)
    state = torch.random.get_rng_state()
    count = randomize_modules(first, ['head', 'backbone.layer4'], seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    randomize_modules(second, ['head', 'backbone.layer4'], seed=7)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                  second.state_dict().values()))
    assert count == sum(p.numel() for p in classifier.head.parameters()) + \
        sum(p.numel() for p in classifier.backbone.layer4.parameters())
    randomize_modules(second, ['head'], seed=8)
    assert not torch.equal(first.head.fc.weight, second.head.fc.weight)


def test_batch_norm_statistics_are_reset(classifier):
    import copy
    model = copy.deepcopy(classifier)
    norm = model.backbone.layer4[0].bn1
    norm.running_mean.fill_(3.0)
    randomize_modules(model, ['backbone.layer4'], seed=0)
    assert torch.equal(norm.running_mean, torch.zeros_like(norm.running_mean))
    assert torch.equal(norm.running_var, torch.ones_like(norm.running_var))


def test_parameters_without_reset_get_a_normal_draw(detector):
    import copy
    model = copy.deepcopy(detector)
    scales = [s.scale for s in model.bbox_head.scales]  # mmcv Scale: no reset_parameters
    assert all(float(s) == 1.0 for s in scales)
    randomize_modules(model, ['bbox_head'], seed=0)
    assert all(abs(float(s)) < 0.1 for s in scales)


def test_bad_steps_are_one_line_errors(classifier):
    with pytest.raises(CascadeError, match="no module 'heads' to randomise"):
        randomize_modules(classifier, ['heads'], seed=0)
    with pytest.raises(CascadeError, match="step 'neck' has nothing to randomise: "
                                           'GlobalAveragePooling has no parameters'):
        randomize_modules(classifier, ['neck'], seed=0)
