"""D-RISE (Petsiuk et al. 2021, arXiv 2006.03204) for any detector."""
from typing import TYPE_CHECKING, Optional

import torch
from torch import Tensor

from ..registry import EXPLAINERS
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
    families = ('detection', 'instance_segmentation')

    def __init__(self, score_thr: float = 0.3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.score_thr = score_thr

    def classes_with_targets(self, samples: Optional[list], image: int, classes: Tensor) -> Tensor:
        """Classes with a predicted box of at least ``score_thr``: the others stay 0."""
        targets = samples[image].pred_instances
        predicted = targets.labels[targets.scores >= self.score_thr].unique().cpu()
        return classes[torch.isin(classes.cpu(), predicted)]

    def mask_weights(self, adapter: 'ModelAdapter', masked: Tensor, image: int,
                     samples: Optional[list], classes: Tensor) -> Tensor:
        from mmdet.structures.bbox import bbox_overlaps
        targets = samples[image].pred_instances
        targets = targets[targets.scores >= self.score_thr]
        detections = adapter.detections_of_inputs(masked, samples[image])
        rows = torch.cat([torch.full((len(d),), row, dtype=torch.long, device=masked.device)
                          for row, d in enumerate(detections)])
        boxes = torch.cat([d.bboxes for d in detections])
        labels = torch.cat([d.labels for d in detections])
        scores = torch.cat([d.scores for d in detections])
        weights = masked.new_zeros(len(masked), len(classes))
        for column, cls in enumerate(classes.tolist()):  # all masked images at once
            target_boxes = targets.bboxes[targets.labels == cls]
            same = labels == cls
            if len(target_boxes) == 0 or not same.any():
                continue
            similarity = (bbox_overlaps(target_boxes, boxes[same]) * scores[same][None]).amax(0)
            weights[:, column] = weights[:, column].scatter_reduce(
                0, rows[same], similarity, reduce='amax')
        return weights
