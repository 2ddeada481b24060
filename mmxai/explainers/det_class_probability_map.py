"""DetClassProbabilityMap for single-stage detectors."""
from typing import TYPE_CHECKING, List, Optional

from torch import Tensor

from ..adapters.dense_heads import CORNER_HEADS, supported_head_type, unreadable_head_reason
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
    [0, 1]; see :mod:`mmxai.adapters.dense_heads` for the per-head rules.

    Per box (:meth:`explain_boxes`), the map of the box's class keeps only the
    evidence that can produce that box: the anchors whose own regressed box
    overlaps it with IoU >= ``box_iou_thr``; from the same pass, nothing runs
    again. Its levels are merged by their max, not their mean: a box's
    anchors sit on one or two levels, and the mean would divide their
    probability by the number of levels. So a box map's peak is the highest
    class probability of any anchor that regresses to the box (for a
    predicted box at least its score, which MMDetection multiplies by
    centre-ness or IoU-ness where the head has one; PAA's score is the
    geometric mean ``sqrt(p x IoU)``, which exceeds the class probability p
    where the IoU does, so there the peak is at least the score squared).

    Args:
        box_iou_thr (float): IoU of an anchor's decoded box with a target box
            above which the anchor is evidence for that box.
    """

    def __init__(self, box_iou_thr: float = 0.5) -> None:
        self.box_iou_thr = box_iou_thr

    algorithm = 'classwisesaliencymap'
    class_wise = True
    value_range = (0.0, 1.0)
    families = ('detection',)

    def check_supported(self, adapter: 'ModelAdapter') -> None:
        super().check_supported(adapter)
        segmenter = getattr(adapter.model, 'panoptic_head', None)
        if adapter.dense_head is None and segmenter is not None:
            raise self.unsupported(adapter, f'its {type(segmenter).__name__} predicts a mask '
                                   'and a class per learned query (a query-based segmenter, '
                                   'which mmxai does not read yet)')
        why = unreadable_head_reason(adapter.dense_head)
        if why:
            raise self.unsupported(adapter, why)

    def check_box_maps_supported(self, adapter: Optional['ModelAdapter'] = None) -> None:
        super().check_box_maps_supported(adapter)
        if adapter is not None and supported_head_type(adapter.dense_head) in CORNER_HEADS:
            raise self.unsupported(adapter, 'per-box maps need a box per cell, and its cells '
                                   'are box corners')

    def explain(self, adapter: 'ModelAdapter', samples: Optional[list] = None,
                targets: Optional[List[Tensor]] = None) -> Tensor:
        return merge_levels(adapter.class_probability_levels(), adapter.level_grids())[0]

    def explain_boxes(self, adapter: 'ModelAdapter', samples: list, boxes: List[Tensor],
                      labels: List[Tensor]) -> List[Tensor]:
        from mmdet.structures.bbox import bbox_overlaps
        levels = adapter.anchor_class_probabilities()  # per level (B, A, K, h, w)
        grids = adapter.level_grids()
        maps = []
        for image, (image_boxes, image_labels) in enumerate(zip(boxes, labels)):
            per_level = []
            for probs, decoded in zip(levels, adapter.prior_boxes(
                    image, samples[image].metainfo.get('img_shape'))):
                anchors, _, height, width = probs[image].shape
                # (h * w * A, N): each prior's probability of each box's class, kept
                # where the prior's own box matches that box.
                class_probs = probs[image][:, image_labels.to(probs.device)]  # (A, N, h, w)
                # Explicit sizes: an image without a box has N = 0.
                num_boxes = len(image_labels)
                class_probs = class_probs.permute(2, 3, 0, 1).reshape(
                    height * width * anchors, num_boxes)
                evidence = bbox_overlaps(decoded, image_boxes.to(decoded)) >= self.box_iou_thr
                kept = (class_probs * evidence).reshape(height, width, anchors,
                                                        num_boxes).amax(2)
                per_level.append(kept.permute(2, 0, 1)[None])  # (1, N, h, w)
            maps.append(merge_levels(per_level, grids, reduce='max')[0][0])
        return maps
