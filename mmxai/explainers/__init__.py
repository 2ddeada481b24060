"""Saliency methods, one small file each over :class:`BaseExplainer`."""
from typing import Dict, List, Union

from ..registry import EXPLAINERS
from ..utils import UnknownAlgorithmError
from .activation_map import ActivationMap
from .base import BaseExplainer, UnsupportedModelError, merge_levels
from .det_class_probability_map import DetClassProbabilityMap
from .drise import DRISE
from .eigen_cam import EigenCAM
from .grad_cam import GradCAM
from .grad_cam_plus_plus import GradCAMPlusPlus
from .gradient_cam import GradientCAM
from .layer_cam import HiResCAM, LayerCAM
from .mask_class_map import MaskClassMap
from .recipro_cam import ReciproCAM
from .rise import RISE, RandomMaskExplainer
from .vit_recipro_cam import ViTReciproCAM
from .xgrad_cam import XGradCAM

#: ``--explain-algorithm`` names -> explainer type, per model family.
ALGORITHMS: Dict[str, Dict[str, str]] = {
    'activationmap': {'detection': 'ActivationMap', 'instance_segmentation': 'ActivationMap',
                      'classification': 'ActivationMap', 'vision_transformer': 'ActivationMap'},
    'eigencam': {'detection': 'EigenCAM', 'instance_segmentation': 'EigenCAM',
                 'classification': 'EigenCAM', 'vision_transformer': 'EigenCAM'},
    'classwisesaliencymap': {'detection': 'DetClassProbabilityMap',
                             'instance_segmentation': 'MaskClassMap',
                             'classification': 'ReciproCAM',
                             'vision_transformer': 'ViTReciproCAM'},
    # Gradient methods: CNN classifiers and single-stage detectors.
    **{name: {'detection': cls, 'classification': cls} for name, cls in (
        ('gradcam', 'GradCAM'), ('gradcampp', 'GradCAMPlusPlus'), ('xgradcam', 'XGradCAM'),
        ('layercam', 'LayerCAM'), ('hirescam', 'HiResCAM'))},
    # Black-box methods: any classifier, any detector (two-stage included).
    'rise': {'classification': 'RISE', 'vision_transformer': 'RISE'},
    'drise': {'detection': 'DRISE', 'instance_segmentation': 'DRISE'},
}
#: Methods that run the model once per mask (hundreds of passes per image).
BLACK_BOX_ALGORITHMS = ('rise', 'drise')


def algorithms_for(family: str, black_box: bool = True) -> List[str]:
    """Names of :data:`ALGORITHMS` that serve a model family (optionally not black-box)."""
    return [name for name, families in ALGORITHMS.items()
            if family in families and (black_box or name not in BLACK_BOX_ALGORITHMS)]


def build_explainer(algorithm: Union[str, dict, BaseExplainer], family: str) -> BaseExplainer:
    """Build an explainer from an algorithm name, a config dict or an instance.

    Args:
        algorithm: A name of :data:`ALGORITHMS` (``'classwisesaliencymap'``,
            ``'gradcam'``, ...), a name with arguments such as
            ``dict(algorithm='drise', num_masks=500)``, a config such as
            ``dict(type='EigenCAM')``, or an explainer.
        family (str): ``'detection'``, ``'instance_segmentation'`` (detectors
            with an RoI mask head), ``'classification'`` (CNN-like classifiers)
            or ``'vision_transformer'`` (ViT, DeiT).

    Raises:
        ValueError: For an unknown algorithm name.
    """
    if isinstance(algorithm, BaseExplainer):
        return algorithm
    options: dict = {}
    if isinstance(algorithm, dict) and 'algorithm' in algorithm:
        options = dict(algorithm)
        algorithm = options.pop('algorithm')
    if isinstance(algorithm, str):
        if algorithm not in ALGORITHMS:
            raise UnknownAlgorithmError(f'unknown explain algorithm {algorithm!r}; choose from: '
                                 f'{", ".join(ALGORITHMS)}')
        if family not in ALGORITHMS[algorithm]:
            supported = ', '.join(ALGORITHMS[algorithm])
            raise UnsupportedModelError(f'{algorithm} does not support {family} models; it '
                                        f'supports: {supported}')
        algorithm = dict(type=ALGORITHMS[algorithm][family], **options)
    kwargs = dict(algorithm)
    explainer_type = kwargs.pop('type')
    if isinstance(explainer_type, str):  # the explainer registry is scope-independent
        explainer_type = EXPLAINERS.get(explainer_type)
        if explainer_type is None:
            raise ValueError(f'unknown explainer type {algorithm["type"]!r}; registered: '
                             f'{", ".join(EXPLAINERS.module_dict)}')
    try:
        return explainer_type(**kwargs)
    except TypeError as error:  # an option the method does not take
        raise UnknownAlgorithmError(f'{explainer_type.__name__}: {error}') from error


__all__ = ['ALGORITHMS', 'BLACK_BOX_ALGORITHMS', 'ActivationMap', 'BaseExplainer', 'DRISE',
           'DetClassProbabilityMap', 'algorithms_for',
           'EigenCAM', 'GradCAM', 'GradCAMPlusPlus', 'GradientCAM', 'HiResCAM', 'LayerCAM',
           'MaskClassMap', 'RISE', 'RandomMaskExplainer', 'ReciproCAM', 'UnsupportedModelError',
           'ViTReciproCAM', 'XGradCAM', 'build_explainer', 'merge_levels']
