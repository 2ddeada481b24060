"""ActivationMap: the channel mean of the feature maps."""
from typing import TYPE_CHECKING

from torch import Tensor

from ..registry import EXPLAINERS
from .base import BaseExplainer, merge_levels

if TYPE_CHECKING:
    from ..models.adapters import ModelAdapter


@EXPLAINERS.register_module()
class ActivationMap(BaseExplainer):
    """Class-agnostic map: the mean over channels of the feature maps.

    Classifiers: the backbone's last feature map. Detectors: every FPN level,
    averaged at the size of the largest (first) level.
    """

    name = 'activationmap'

    def explain(self, adapter: 'ModelAdapter') -> Tensor:
        return merge_levels([f.mean(dim=1, keepdim=True) for f in adapter.feature_maps()])
