"""mmxai's registries: children (scope ``mmxai``) of MMEngine's root registries.

A config whose ``default_scope`` is ``mmdet`` or ``mmpretrain`` reaches these
modules as ``type='mmxai.Xxx'`` once ``mmxai`` is imported (for example
through ``custom_imports=dict(imports=['mmxai'])``).
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmxai', locations=['mmxai.models'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmxai', locations=['mmxai.engine.hooks'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope='mmxai', locations=['mmxai.engine'])
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, scope='mmxai', locations=['mmxai.datasets'])
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, scope='mmxai', locations=['mmxai.datasets'])
FUNCTIONS = Registry(
    'function', parent=MMENGINE_FUNCTIONS, scope='mmxai', locations=['mmxai.datasets'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='mmxai', locations=['mmxai.evaluation'])
#: Saliency methods. Not an MMEngine kind, so a root registry of its own.
EXPLAINERS = Registry('explainer', scope='mmxai', locations=['mmxai.explainers'])
