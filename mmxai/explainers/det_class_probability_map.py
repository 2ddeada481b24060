"""DetClassProbabilityMap for single-stage detectors."""
from typing import TYPE_CHECKING, List, Optional

from torch import Tensor

from ..registry import EXPLAINERS
from .base import BaseExplainer, merge_levels

if TYPE_CHECKING:
    from ..models.adapters import ModelAdapter


@EXPLAINERS.register_module()
class DetClassProbabilityMap(BaseExplainer):
    """Class-wise maps from the classification branch the head already ran.

    Per FPN level, the head's classification output becomes per-anchor class
    probabilities (sigmoid for sigmoid heads, i.e. the same per-class scores
    the head thresholds boxes with; softmax over classes plus background for
    softmax heads such as SSD), the max is taken over anchors, the levels are
    resized to the largest level and averaged. Values are probabilities in
    [0, 1]; see :mod:`mmxai.models.det_heads` for the per-head rules.
    """

    name = 'classwisesaliencymap'
    class_wise = True
    tasks = ('detection',)

    def check_supported(self, adapter: 'ModelAdapter') -> None:
        super().check_supported(adapter)
        adapter.check_class_probabilities_supported()

    def explain(self, adapter: 'ModelAdapter', samples: Optional[list] = None,
                targets: Optional[List[Tensor]] = None) -> Tensor:
        return merge_levels(adapter.class_probability_levels())
