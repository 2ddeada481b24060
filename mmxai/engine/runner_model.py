"""The model a Runner holds, without its distributed wrapper."""
from typing import TYPE_CHECKING

from mmengine.model import is_model_wrapper
from torch import nn

from ..models import SaliencyModel
from ..utils import UnsupportedModelError

if TYPE_CHECKING:
    from mmengine.runner import Runner


def unwrapped_model(runner: 'Runner') -> nn.Module:
    """``runner.model``, or the module its distributed wrapper holds."""
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


def saliency_model(runner: 'Runner') -> SaliencyModel:
    """The runner's explain-mode model; a one-line error when it has none."""
    model = unwrapped_model(runner)
    if not isinstance(model, SaliencyModel):
        raise UnsupportedModelError(
            f'ExplainHook needs an explain-mode model, not {type(model).__name__}: add '
            "dict(type='mmxai.PrepareExplainHook') to custom_hooks")
    return model
