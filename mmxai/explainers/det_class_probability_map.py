"""DetClassProbabilityMap for single-stage detectors."""
from typing import TYPE_CHECKING, List, Optional

from torch import Tensor

from ..adapters.dense_heads import check_head_supported
from ..geometry import merge_levels
from ..registry import EXPLAINERS
from .base import BaseExplainer

if TYPE_CHECKING:
    from ..adapters import ModelAdapter


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

    algorithm = 'classwisesaliencymap'
    class_wise = True
    value_range = (0.0, 1.0)
    families = ('detection',)

    def check_supported(self, adapter: 'ModelAdapter') -> None:
        super().check_supported(adapter)
        check_head_supported(adapter.dense_head, type(adapter.model).__name__, self.algorithm)

    def explain(self, adapter: 'ModelAdapter', samples: Optional[list] = None,
                targets: Optional[List[Tensor]] = None) -> Tensor:
        return merge_levels(adapter.class_probability_levels(), adapter.level_grids())[0]
