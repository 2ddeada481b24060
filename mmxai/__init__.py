"""mmxai: saliency maps for MMDetection and MMPretrain models."""
from .version import __version__, check_mmcv, check_torch

check_torch()
check_mmcv()

from . import apis, datasets, deploy, engine, evaluation, explainers, models  # noqa: E402,F401

__all__ = ['__version__']
