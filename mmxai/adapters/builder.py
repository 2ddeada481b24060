"""Choosing the adapter of a model."""
from torch import nn

from .base import ModelAdapter
from .classifier import ClassifierAdapter
from .detector import DetectorAdapter
from .instance_segmentation import InstanceSegmentationAdapter, has_roi_mask_head
from .vision_transformer import VisionTransformerAdapter


def _is_instance(model: nn.Module, module_path: str, class_name: str) -> bool:
    try:
        module = __import__(module_path, fromlist=[class_name])
    except ImportError:  # that OpenMMLab package is not installed
        return False
    return isinstance(model, getattr(module, class_name))


def build_adapter(model: nn.Module) -> ModelAdapter:
    """The adapter of ``model``'s family.

    Raises:
        TypeError: If the model is neither an MMDetection detector nor an
            MMPretrain ``ImageClassifier``.
    """
    if _is_instance(model, 'mmdet.models.detectors', 'BaseDetector'):
        return InstanceSegmentationAdapter(model) if has_roi_mask_head(model) \
            else DetectorAdapter(model)
    if _is_instance(model, 'mmpretrain.models.classifiers', 'ImageClassifier'):
        if _is_instance(model.backbone, 'mmpretrain.models.backbones', 'VisionTransformer'):
            return VisionTransformerAdapter(model)
        return ClassifierAdapter(model)
    raise TypeError(f'mmxai cannot explain {type(model).__name__}: it supports MMDetection '
                    'detectors and MMPretrain ImageClassifier models')
