"""Choosing the adapter of a model."""
from torch import nn

from ..utils.errors import UnsupportedModelError
from .base import ModelAdapter
from .classifier import ClassifierAdapter
from .detector import DetectorAdapter
from .instance_segmentation import InstanceSegmentationAdapter, has_roi_mask_head
from .predicted_masks import PredictedMaskAdapter, reads_masks_only
from .query_detector import QueryDetectorAdapter, is_query_detector
from .two_stage import TwoStageDetectorAdapter, has_roi_box_head
from .vision_transformer import VisionTransformerAdapter, token_stack

#: What mmxai explains, for refusals.
EXPLAINED_MODELS = 'MMDetection detectors (BaseDetector) and MMPretrain ImageClassifier models'


def _is_instance(model: nn.Module, module_path: str, class_name: str) -> bool:
    try:
        module = __import__(module_path, fromlist=[class_name])
    except ImportError:  # that OpenMMLab package is not installed
        return False
    return isinstance(model, getattr(module, class_name))


def _is_subclass(model_class: type, module_path: str, class_name: str) -> bool:
    try:
        module = __import__(module_path, fromlist=[class_name])
    except ImportError:  # that OpenMMLab package is not installed
        return False
    return issubclass(model_class, getattr(module, class_name))


def check_explainable(model_class: type) -> None:
    """Raise :class:`UnsupportedModelError` for a model type mmxai does not explain.

    Checked on the class, so that a config is refused before its model is
    built (a tracker may need packages that are not installed).
    """
    if _is_subclass(model_class, 'mmdet.models.reid', 'BaseReID'):  # an ImageClassifier
        raise UnsupportedModelError(f'mmxai cannot explain {model_class.__name__}: a '
                                    're-identification model outputs embeddings, not classes; '
                                    f'it explains {EXPLAINED_MODELS}')
    for name in ('GLIP', 'GroundingDINO'):
        if _is_subclass(model_class, 'mmdet.models.detectors', name):
            raise UnsupportedModelError(
                f'mmxai cannot explain {model_class.__name__}: an open-vocabulary detector '
                f'predicts for a text prompt, which images alone do not have; it explains '
                f'{EXPLAINED_MODELS} with a fixed class list')
    if not (_is_subclass(model_class, 'mmdet.models.detectors', 'BaseDetector') or
            _is_subclass(model_class, 'mmpretrain.models.classifiers', 'ImageClassifier')):
        raise UnsupportedModelError(f'mmxai cannot explain {model_class.__name__} '
                                    f'({model_class.__module__}): it explains {EXPLAINED_MODELS}')


def predicting_detector(model: nn.Module) -> nn.Module:
    """The detector that makes a detector's predictions.

    The model itself, except for semi-supervised detectors (Soft Teacher):
    their ``predict`` runs the teacher or the student
    (``semi_test_cfg.predict_on``), whose modules are the ones to hook.
    """
    if _is_instance(model, 'mmdet.models.detectors', 'SemiBaseDetector'):
        return getattr(model, (model.semi_test_cfg or {}).get('predict_on', 'teacher'))
    return model


def build_adapter(model: nn.Module) -> ModelAdapter:
    """The adapter of ``model``'s family.

    Raises:
        UnsupportedModelError: If the model is neither an MMDetection detector
            nor an MMPretrain ``ImageClassifier`` (trackers, re-identification
            and video models included).
    """
    check_explainable(type(model))
    if _is_instance(model, 'mmdet.models.detectors', 'BaseDetector'):
        detector = predicting_detector(model)
        if is_query_detector(detector):
            return QueryDetectorAdapter(detector)
        if has_roi_mask_head(detector):
            return InstanceSegmentationAdapter(detector)
        if has_roi_box_head(detector):
            return TwoStageDetectorAdapter(detector)
        if reads_masks_only(detector):
            return PredictedMaskAdapter(detector)
        return DetectorAdapter(detector)
    stack = token_stack(model.backbone)
    if stack is not None:
        return VisionTransformerAdapter(model, stack)
    return ClassifierAdapter(model)
