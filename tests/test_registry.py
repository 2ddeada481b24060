import pytest
from mmengine.registry import init_default_scope

from mmxai import registry
from mmxai.engine.hooks import ExplainHook, PrepareExplainHook
from mmxai.models import ExplainModel

MMXAI_REGISTRIES = ['MODELS', 'HOOKS', 'DATASETS', 'METRICS', 'TRANSFORMS']


def _scope_registry(scope: str, kind: str):
    module = __import__(f'{scope}.registry', fromlist=[kind])
    return getattr(module, kind)


@pytest.mark.parametrize('scope', ['mmdet', 'mmpretrain'])
@pytest.mark.parametrize('kind', MMXAI_REGISTRIES)
def test_every_mmxai_module_resolves_from_scope(scope, kind):
    init_default_scope(scope)
    ours = getattr(registry, kind)
    theirs = _scope_registry(scope, kind)
    for name, cls in ours.module_dict.items():
        assert theirs.get(f'mmxai.{name}') is cls, f'{kind}: mmxai.{name} from {scope}'


@pytest.mark.parametrize('scope', ['mmdet', 'mmpretrain'])
def test_core_modules_registered_and_buildable(scope):
    init_default_scope(scope)
    hooks = _scope_registry(scope, 'HOOKS')
    assert hooks.get('mmxai.ExplainHook') is ExplainHook
    assert hooks.get('mmxai.PrepareExplainHook') is PrepareExplainHook
    assert _scope_registry(scope, 'MODELS').get('mmxai.ExplainModel') is ExplainModel
    assert isinstance(hooks.build(dict(type='mmxai.ExplainHook', output_dir='x')), ExplainHook)
    assert _scope_registry(scope, 'DATASETS').get('mmxai.ImageFolderDataset') is not None


def test_explainers_registry_builds_every_algorithm():
    from mmxai.explainers import ALGORITHMS, build_explainer
    for name, per_task in ALGORITHMS.items():
        for task, type_name in per_task.items():
            explainer = build_explainer(name, task)
            assert type(explainer).__name__ == type_name
            assert registry.EXPLAINERS.get(f'mmxai.{type_name}') is type(explainer)
    with pytest.raises(ValueError, match='unknown explain algorithm'):
        build_explainer('gradcam++', 'detection')
