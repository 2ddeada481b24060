"""Saliency methods, one small file each over :class:`BaseExplainer`."""
from .activation_map import ActivationMap
from .base import BaseExplainer
from .base_gradient_cam import BaseGradientCAM
from .builder import (
    ALGORITHMS,
    BLACK_BOX_ALGORITHMS,
    EXPLAINER_TYPES,
    algorithms_explaining,
    algorithms_for,
    build_explainer,
    explainer_for,
)
from .det_class_probability_map import DetClassProbabilityMap
from .drise import DRISE
from .eigen_cam import EigenCAM
from .grad_cam import GradCAM
from .grad_cam_plus_plus import GradCAMPlusPlus
from .layer_cam import HiResCAM, LayerCAM
from .mask_class_map import MaskClassMap
from .predicted_mask_class_map import PredictedMaskClassMap
from .query_class_map import QueryClassMap
from .recipro_cam import ReciproCAM
from .rise import RISE, RandomMaskExplainer
from .roi_class_probability_map import RoIClassProbabilityMap
from .vit_recipro_cam import ViTReciproCAM
from .xgrad_cam import XGradCAM

__all__ = ['ALGORITHMS', 'BLACK_BOX_ALGORITHMS', 'EXPLAINER_TYPES', 'ActivationMap',
           'BaseExplainer', 'BaseGradientCAM', 'DRISE', 'DetClassProbabilityMap', 'EigenCAM',
           'GradCAM', 'GradCAMPlusPlus', 'HiResCAM', 'LayerCAM', 'MaskClassMap',
           'PredictedMaskClassMap', 'QueryClassMap',
           'RISE', 'RandomMaskExplainer', 'ReciproCAM', 'RoIClassProbabilityMap', 'ViTReciproCAM',
           'XGradCAM', 'algorithms_explaining', 'algorithms_for', 'build_explainer',
           'explainer_for']
