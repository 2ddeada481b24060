"""Saliency methods, one small file each over :class:`BaseExplainer`."""
from typing import Dict, Union

from ..registry import EXPLAINERS
from ..utils import UserInputError
from .activation_map import ActivationMap
from .base import BaseExplainer, UnsupportedModelError, merge_levels
from .det_class_probability_map import DetClassProbabilityMap
from .eigen_cam import EigenCAM
from .recipro_cam import ReciproCAM
from .vit_recipro_cam import ViTReciproCAM

#: ``--explain-algorithm`` names -> explainer type, per model family.
ALGORITHMS: Dict[str, Dict[str, str]] = {
    'activationmap': {'detection': 'ActivationMap', 'classification': 'ActivationMap',
                      'vision_transformer': 'ActivationMap'},
    'eigencam': {'detection': 'EigenCAM', 'classification': 'EigenCAM',
                 'vision_transformer': 'EigenCAM'},
    'classwisesaliencymap': {'detection': 'DetClassProbabilityMap',
                             'classification': 'ReciproCAM',
                             'vision_transformer': 'ViTReciproCAM'},
}


def build_explainer(algorithm: Union[str, dict, BaseExplainer], family: str) -> BaseExplainer:
    """Build an explainer from an algorithm name, a config dict or an instance.

    Args:
        algorithm: ``'activationmap'``, ``'eigencam'``, ``'classwisesaliencymap'``,
            a config such as ``dict(type='mmxai.EigenCAM')``, or an explainer.
        family (str): ``'detection'``, ``'classification'`` (CNN-like
            classifiers) or ``'vision_transformer'`` (ViT, DeiT).

    Raises:
        ValueError: For an unknown algorithm name.
    """
    if isinstance(algorithm, BaseExplainer):
        return algorithm
    if isinstance(algorithm, str):
        if algorithm not in ALGORITHMS:
            raise UserInputError(f'unknown explain algorithm {algorithm!r}; choose from: '
                             f'{", ".join(ALGORITHMS)}')
        algorithm = dict(type=ALGORITHMS[algorithm][family])
    kwargs = dict(algorithm)
    explainer_type = kwargs.pop('type')
    if isinstance(explainer_type, str):  # the explainer registry is scope-independent
        explainer_type = EXPLAINERS.get(explainer_type)
        if explainer_type is None:
            raise ValueError(f'unknown explainer type {algorithm["type"]!r}; registered: '
                             f'{", ".join(EXPLAINERS.module_dict)}')
    return explainer_type(**kwargs)


__all__ = ['ALGORITHMS', 'ActivationMap', 'BaseExplainer', 'DetClassProbabilityMap',
           'EigenCAM', 'ReciproCAM', 'UnsupportedModelError', 'ViTReciproCAM', 'build_explainer',
           'merge_levels']
