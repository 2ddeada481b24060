"""The explain-mode configs of configs/<task>/: each builds its model and the
hooks' algorithm serves it (a config naming an algorithm its model family
does not support would fail only when a user runs it)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import HOOKS

from mmxai.models import ExplainModel
from tests.helpers import CONFIGS, build_model

EXPLAIN_CONFIGS = sorted(glob.glob(osp.join(CONFIGS, '*', '*_explain.py')))


def test_every_task_has_an_explain_config():
    tasks = {osp.basename(osp.dirname(path)) for path in EXPLAIN_CONFIGS}
    assert tasks == {'classification', 'detection', 'instance_segmentation'}


@pytest.mark.parametrize('path', EXPLAIN_CONFIGS, ids=osp.basename)
def test_explain_config_builds_and_its_algorithm_serves_the_model(path):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports.imports == ['mmxai']
    hooks = [HOOKS.build(dict(hook)) for hook in cfg.custom_hooks]
    prepare = next(hook for hook in hooks if type(hook).__name__ == 'PrepareExplainHook')
    explain = ExplainModel(build_model(cfg), explainer=prepare.explainer)
    assert explain.explainer is not None
