"""D-RISE (Petsiuk et al. 2021, arXiv 2006.03204) for any detector."""
from typing import TYPE_CHECKING, Any, List, Optional

import torch
from torch import Tensor

from ..registry import EXPLAINERS
from ..utils.defaults import DEFAULT_SCORE_THR
from .base import quarter_resolution_maps
from .rise import RandomMaskExplainer

if TYPE_CHECKING:
    from ..adapters import ModelAdapter


@EXPLAINERS.register_module()
class DRISE(RandomMaskExplainer):
    """D-RISE: a mask's weight is how well the masked image's detections match the targets.

    The targets are the image's predicted boxes of a class scoring at least
    ``score_thr``. For a masked image with detections ``(b_j, l_j, s_j)`` the
    similarity to target box ``b`` of class ``c`` is
    ``max_j IoU(b, b_j) * s_j * [l_j == c]`` (the paper's IoU x class-vector
    cosine x objectness, for detectors that report a label and a score); a
    class's weight is the largest similarity over its target boxes. Any
    detector the Runner can run works, two-stage ones included. See
    :class:`~mmxai.explainers.rise.RandomMaskExplainer` for the other arguments.

    Args:
        score_thr (float): Score of the predicted boxes that are targets.
    """

    algorithm = 'drise'
    families = ('detection', 'two_stage_detection', 'query_detection', 'instance_segmentation',
                'mask_prediction')
    maps_detections_only = True

    def __init__(self, score_thr: float = DEFAULT_SCORE_THR, **kwargs) -> None:
        super().__init__(**kwargs)
        self.score_thr = score_thr

    def classes_with_targets(self, samples: Optional[list], image: int, classes: Tensor) -> Tensor:
        """Classes with a predicted box of at least ``score_thr``: the others stay 0."""
        targets = samples[image].pred_instances
        predicted = targets.labels[targets.scores >= self.score_thr].unique().cpu()
        return classes[torch.isin(classes.cpu(), predicted)]

    def mask_weights(self, adapter: 'ModelAdapter', masked: Tensor, image: int,
                     samples: Optional[list], classes: Tensor) -> Tensor:
        targets = samples[image].pred_instances
        targets = targets[targets.scores >= self.score_thr]
        detections = adapter.detections_of_inputs(masked, samples[image])
        per_box = box_similarity(detections, targets.bboxes, targets.labels)  # (n, T)
        weights = masked.new_zeros(len(masked), len(classes))
        for column, cls in enumerate(classes.tolist()):  # a class: its best target box
            of_class = targets.labels == cls
            if of_class.any():
                weights[:, column] = per_box[:, of_class].amax(1)
        return weights

    def explain_boxes(self, adapter: 'ModelAdapter', samples: list, boxes: List[Tensor],
                      labels: List[Tensor]) -> List[Tensor]:
        """Target-driven D-RISE (the paper's use): one map per given box.

        A mask's weight for a target box is the best similarity of the masked
        image's detections to it, as for predicted targets.
        """
        inputs, maps = quarter_resolution_maps(adapter)
        size = tuple(maps.shape[-2:])
        weighted = self.weighted_masks(
            inputs, size, {image: len(b) for image, b in enumerate(boxes)},
            lambda masked, image: box_similarity(
                adapter.detections_of_inputs(masked, samples[image], rescale=False),
                boxes[image].to(masked), labels[image].to(masked.device)))
        return [weighted.get(image, maps.new_zeros(0, *size)) for image in range(len(boxes))]


def box_similarity(detections: List[Any], boxes: Tensor, labels: Tensor) -> Tensor:
    """D-RISE's similarity of each image's detections to each target box.

    Args:
        detections (list): Per masked image, its ``InstanceData`` predictions.
        boxes (Tensor): (T, 4) target boxes, in the detections' coordinates.
        labels (Tensor): (T,) their classes.

    Returns:
        Tensor: (n, T) ``max_j IoU(box_t, b_j) * s_j * [l_j == label_t]`` over
        the detections ``(b_j, l_j, s_j)`` of each of the n masked images.
    """
    from mmdet.structures.bbox import bbox_overlaps
    device = boxes.device
    rows = torch.cat([torch.full((len(d),), row, dtype=torch.long, device=device)
                      for row, d in enumerate(detections)])
    found = torch.cat([d.bboxes for d in detections]).to(boxes)
    found_labels = torch.cat([d.labels for d in detections]).to(device)
    scores = torch.cat([d.scores for d in detections]).to(boxes)
    similarity = bbox_overlaps(boxes, found) * scores[None] * \
        (labels[:, None] == found_labels[None])  # (T, D)
    weights = boxes.new_zeros(len(boxes), len(detections))
    weights = weights.scatter_reduce(1, rows[None].expand(len(boxes), -1), similarity,
                                     reduce='amax')
    return weights.T
