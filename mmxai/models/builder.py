"""Building the user's model from its config, the way MMEngine's Runner does."""
import copy
from typing import Optional

from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from torch import nn

from ..checkpoint import (
    checkpoint_class_names,
    load_fitting_state_dict,
    safe_load_checkpoint,
)


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
    """
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model = MODELS.build(model_config(cfg))
    classes = None
    if checkpoint is not None:
        weights = safe_load_checkpoint(checkpoint, map_location='cpu')
        load_fitting_state_dict(model, weights, checkpoint)
        classes = checkpoint_class_names(weights)
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    classes = classes or (dataset.get('metainfo') or {}).get('classes')
    model.dataset_meta = dict(classes=list(classes)) if classes else {}
    return model.to(device).eval()
