"""ActivationMap: how strongly the features respond at each position."""
from typing import TYPE_CHECKING, List, Optional

from torch import Tensor

from ..geometry import merge_levels
from ..registry import EXPLAINERS
from .base import ALL_FAMILIES, BaseExplainer

if TYPE_CHECKING:
    from ..adapters import ModelAdapter


def activation_strength(features: Tensor, non_negative: bool) -> Tensor:
    """(B, 1, h, w) activation of (B, C, h, w) features.

    Features of a non-negative activation (a ReLU, as CNN backbones end) give
    their channel mean. Features of either sign (FPN outputs come from a
    linear convolution; transformer tokens from a LayerNorm) give the L2 norm
    over channels instead: the sign of their mean is arbitrary and, measured
    on a trained ATSS, can put the minimum of the map on the objects.

    Args:
        features (Tensor): (B, C, h, w) feature maps.
        non_negative (bool): Whether the layer that made them is a non-negative
            activation (a fact about the model, see
            :attr:`mmxai.adapters.ModelAdapter.features_non_negative`), so that
            one image's map never depends on the other images of its batch.
    """
    if non_negative:
        return features.mean(dim=1, keepdim=True)
    return features.norm(dim=1, keepdim=True)


@EXPLAINERS.register_module()
class ActivationMap(BaseExplainer):
    """Class-agnostic map of feature activation (see :func:`activation_strength`).

    Classifiers: the backbone's last feature map. Detectors: every FPN level,
    averaged at the size of the largest (first) level.
    """

    algorithm = 'activationmap'
    families = ALL_FAMILIES

    def explain(self, adapter: 'ModelAdapter', samples: Optional[list] = None,
                targets: Optional[List[Tensor]] = None) -> Tensor:
        non_negative = adapter.features_non_negative
        return merge_levels([activation_strength(f, non_negative)
                             for f in adapter.feature_maps()], adapter.level_grids())[0]
