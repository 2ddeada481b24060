"""Building the user's model from its config, the way MMEngine's Runner does."""
import copy
from typing import Optional

from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from torch import nn

from ..adapters.builder import check_explainable
from ..checkpoint import (
    checkpoint_class_names,
    load_fitting_state_dict,
    safe_load_checkpoint,
)
from ..utils.errors import UnsupportedModelError


def model_config(cfg: Config) -> dict:
    """The config's model section with the top-level data preprocessor merged in.

    MMPretrain configs keep the data preprocessor (mean, std, channel order)
    at the top level and the Runner merges it into the model's; a model
    built from ``cfg.model`` alone would see un-normalised pixels.

    Args:
        cfg (Config): A training or test config.

    Returns:
        dict: A copy of ``cfg.model``, as the Runner builds it.
    """
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    return model_cfg


def build_model(cfg: Config, checkpoint: Optional[str] = None, device: str = 'cpu') -> nn.Module:
    """The config's model, with its checkpoint, as ``Runner.from_cfg(cfg).model`` would be.

    The top-level data preprocessor is merged in (:func:`model_config`). Like
    MMDetection's ``init_detector``, the model's ``dataset_meta`` holds the checkpoint's
    class names (or the test set's, without them).

    Args:
        cfg (Config): A training or test config.
        checkpoint (str, optional): Weights, by path or URL (any scheme
            MMEngine's ``CheckpointLoader`` takes, loaded weights-only by
            :func:`mmxai.checkpoint.safe_load_checkpoint`); they must fit the
            model exactly (see :func:`mmxai.checkpoint.check_checkpoint_fits`).
        device (str): Where the model goes.

    Returns:
        nn.Module: The model in eval mode.

    Raises:
        UnsupportedModelError: For a model mmxai does not explain (trackers,
            re-identification), or one that cannot be built here (a package
            it needs is missing, a config error), in one line.
    """
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model_cfg = model_config(cfg)
    model_class = model_cfg.get('type')
    if isinstance(model_class, str):  # looked up as MODELS.build does, in the default scope
        with MODELS.switch_scope_and_registry(None) as registry:
            model_class = registry.get(model_class)
    if isinstance(model_class, type):
        check_explainable(model_class)
    try:
        model = MODELS.build(model_cfg)
    except Exception as error:  # the config's own model: a missing package, a config bug
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ''
        raise UnsupportedModelError(
            f'the config\'s model ({model_cfg.get("type")}) cannot be built here: '
            f'{type(error).__name__}: {" ".join(reason.split())}') from error
    classes = None
    if checkpoint is not None:
        weights = safe_load_checkpoint(checkpoint, map_location='cpu')
        load_fitting_state_dict(model, weights, checkpoint)
        classes = checkpoint_class_names(weights)
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    classes = classes or (dataset.get('metainfo') or {}).get('classes')
    model.dataset_meta = dict(classes=list(classes)) if classes else {}
    return model.to(device).eval()
