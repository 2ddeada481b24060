"""The table of explain algorithms and the builder of explainers."""
import inspect
from typing import TYPE_CHECKING, Dict, List, Optional, Type, Union

from ..registry import EXPLAINERS
from ..utils.errors import UnknownAlgorithmError, UnsupportedModelError

# Importing each method's module registers it in EXPLAINERS.
from . import (  # noqa: F401
    activation_map,
    det_class_probability_map,
    drise,
    eigen_cam,
    grad_cam,
    grad_cam_plus_plus,
    layer_cam,
    mask_class_map,
    predicted_mask_class_map,
    query_class_map,
    recipro_cam,
    rise,
    roi_class_probability_map,
    vit_recipro_cam,
    xgrad_cam,
)
from .base import BaseExplainer

if TYPE_CHECKING:
    from ..adapters import ModelAdapter

#: Every method of the explainer registry (imported above, so registered), in
#: registration order.
EXPLAINER_TYPES: List[Type[BaseExplainer]] = [
    explainer_type for explainer_type in EXPLAINERS.module_dict.values()
    if issubclass(explainer_type, BaseExplainer) and explainer_type.algorithm]


def _algorithm_table() -> Dict[str, Dict[str, str]]:
    table: Dict[str, Dict[str, str]] = {}
    for explainer_type in EXPLAINER_TYPES:
        for family in explainer_type.families:
            table.setdefault(explainer_type.algorithm, {})[family] = explainer_type.__name__
    return table


#: ``--explain-algorithm`` names -> explainer type, per model family (from the
#: classes' own ``algorithm`` and ``families``).
ALGORITHMS: Dict[str, Dict[str, str]] = _algorithm_table()
#: Methods that run the model once per mask (hundreds of passes per image).
BLACK_BOX_ALGORITHMS = tuple(t.algorithm for t in EXPLAINER_TYPES if t.black_box)


def algorithms_for(family: str, black_box: bool = True) -> List[str]:
    """Names of :data:`ALGORITHMS` that serve a model family (optionally not black-box)."""
    return [name for name, families in ALGORITHMS.items()
            if family in families and (black_box or name not in BLACK_BOX_ALGORITHMS)]


def build_explainer(algorithm: Union[str, dict, BaseExplainer], family: str,
                    score_thr: Optional[float] = None) -> BaseExplainer:
    """Build an explainer from an algorithm name, a config dict or an instance.

    Args:
        algorithm: A name of :data:`ALGORITHMS` (``'classwisesaliencymap'``,
            ``'gradcam'``, ...), a name with arguments such as
            ``dict(algorithm='drise', num_masks=500)``, a config such as
            ``dict(type='EigenCAM')``, or an explainer.
        family (str): ``'detection'``, ``'two_stage_detection'`` (detectors
            with an RoI box head), ``'query_detection'`` (DETR-style),
            ``'instance_segmentation'`` (detectors with an RoI mask head),
            ``'mask_prediction'`` (instance segmenters read from their
            predicted masks),
            ``'classification'`` (CNN-like classifiers)
            or ``'vision_transformer'`` (ViT, DeiT): an adapter's ``family``.
        score_thr (float, optional): The run's detection score threshold. It
            reaches every method that uses one (D-RISE's targets, mask class
            maps, the gradient methods' detector scores), so one value decides
            what is explained and what the maps are made of. Giving a
            different ``score_thr`` among the algorithm's options is an error.

    Raises:
        UnknownAlgorithmError: For an unknown algorithm name or option.
        UnsupportedModelError: For an algorithm that does not serve ``family``.
    """
    if isinstance(algorithm, BaseExplainer):
        if score_thr is not None and hasattr(algorithm, 'score_thr'):
            algorithm.score_thr = score_thr
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
            raise UnknownAlgorithmError(f'unknown explainer type {algorithm["type"]!r}; '
                                        f'registered: {", ".join(EXPLAINERS.module_dict)}')
    if score_thr is not None and 'score_thr' in inspect.signature(explainer_type).parameters:
        if kwargs.get('score_thr', score_thr) != score_thr:
            raise UnknownAlgorithmError(
                f'score_thr is given twice ({kwargs["score_thr"]} in the algorithm\'s options, '
                f'{score_thr} for the run); give it once (--score-thr)')
        kwargs['score_thr'] = score_thr
    try:
        return explainer_type(**kwargs)
    except TypeError as error:  # an option the method does not take
        raise UnknownAlgorithmError(f'{explainer_type.__name__}: {error}') from error


def explainer_for(algorithm: Union[str, dict, BaseExplainer], adapter: 'ModelAdapter',
                  score_thr: Optional[float] = None) -> BaseExplainer:
    """Build an explainer (see :func:`build_explainer`) that can explain the adapter's model.

    Raises:
        UnsupportedModelError: In one line, why the method cannot explain the
            model and which methods (default options) can.
    """
    try:
        explainer = build_explainer(algorithm, adapter.family, score_thr)
        explainer.check_supported(adapter)
        return explainer
    except UnsupportedModelError as error:
        refused = algorithm.get('algorithm') if isinstance(algorithm, dict) else \
            getattr(algorithm, 'algorithm', algorithm)
        others = [name for name in algorithms_explaining(adapter) if name != refused]
        if not others:
            raise
        listed = f'{others[0]} works' if len(others) == 1 else \
            f'{", ".join(others[:-1])} and {others[-1]} work'
        raise UnsupportedModelError(f'{error}; {listed} for it') from error


def algorithms_explaining(adapter: 'ModelAdapter') -> List[str]:
    """Names of the algorithms that, with their default options, explain the adapter's model."""
    names = []
    for name in algorithms_for(adapter.family):
        try:
            build_explainer(name, adapter.family).check_supported(adapter)
        except UnsupportedModelError:
            continue
        names.append(name)
    return names
