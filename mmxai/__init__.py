"""mmxai: saliency maps for MMDetection and MMPretrain models."""
from .version import __version__, check_mmcv

check_mmcv()

from .checkpoint import register_safe_checkpoint_loading  # noqa: E402

register_safe_checkpoint_loading()

from . import apis, datasets, deploy, engine, evaluation, explainers, models  # noqa: E402,F401

__all__ = ['__version__']
