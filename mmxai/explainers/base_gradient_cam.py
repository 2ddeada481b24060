"""The base of the gradient CAM family (Grad-CAM and its variants)."""
from typing import TYPE_CHECKING, List, Optional

import torch
from torch import Tensor

from ..adapters.dense_heads import CORNER_HEADS, supported_head_type, unreadable_head_reason
from ..geometry import merge_levels
from ..utils.defaults import DEFAULT_SCORE_THR
from .base import BaseExplainer

if TYPE_CHECKING:
    from ..adapters import ModelAdapter


class BaseGradientCAM(BaseExplainer):
    """Maps from a target layer's activations A and the gradients G of a class score.

    A subclass only says how A and G make a map (:meth:`combine`). The test
    loop runs without gradients, so they are turned on here; with the default
    target layer (the last backbone stage of a classifier, the FPN levels of
    a detector) only the network after it runs again, on the captured
    activations. Scores: classifier logits; for a detector, the sum of the
    class's per-position probabilities of at least ``score_thr`` (the scores
    of the boxes it predicts), or the largest if none is. Only the classes to
    be kept are differentiated, one backward pass each for the whole batch.

    Several levels (a detector's FPN) are combined as pytorch-grad-cam
    combines several target layers: each level's map is rectified and
    min-max scaled to [0, 1] per image and class (its ``scale_cam_image``),
    then the levels are averaged at the largest level's size
    (:func:`rescaled_levels`); otherwise the level with the largest gradients
    would decide the map alone. A single level keeps the method's own values.

    Args:
        target_layer (str, optional): Module name, e.g. ``'backbone.layer3'``;
            by default the last backbone stage (classifiers) or the neck
            (detectors).
        score_thr (float): Detection score threshold, as above.
    """

    class_wise = True
    families = ('detection', 'classification')

    def __init__(self, target_layer: Optional[str] = None,
                 score_thr: float = DEFAULT_SCORE_THR) -> None:
        self.target_layer = target_layer
        self.score_thr = score_thr

    def check_supported(self, adapter: 'ModelAdapter') -> None:
        super().check_supported(adapter)
        why = unreadable_head_reason(adapter.dense_head) if adapter.task == 'detection' \
            else None  # differentiates the dense head's class scores
        if adapter.task == 'detection' and supported_head_type(adapter.dense_head) in CORNER_HEADS:
            why = ('its corner heatmaps come from the last of its stacked feature maps through '
                   'layers of that stack, and the gradients are taken at every feature map')
        if why:
            raise self.unsupported(adapter, why)
        if self.target_layer is None and not adapter.map_decides_scores:
            raise self.unsupported(
                adapter, f'{type(adapter.model.backbone).__name__} also scores its classes '
                'from a transformer branch, not from its feature map alone; name a target_layer')

    @staticmethod
    def combine(activations: Tensor, gradients: Tensor) -> Tensor:
        """(B, h, w) map from (B, C, h, w) activations and gradients."""
        raise NotImplementedError

    def explain(self, adapter: 'ModelAdapter', samples: Optional[list] = None,
                targets: Optional[List[Tensor]] = None) -> Tensor:
        with torch.enable_grad():
            activations, scores = adapter.differentiable_scores(self.target_layer,
                                                                self.score_thr)
            batch, num_classes = scores.shape
            maps = [a.new_zeros(batch, num_classes, *a.shape[-2:]) for a in activations]
            classes = range(num_classes) if targets is None else \
                sorted({int(c) for t in targets for c in t.tolist()})
            for index, cls in enumerate(classes):
                gradients = torch.autograd.grad(scores[:, cls].sum(), activations,
                                                retain_graph=index + 1 < len(classes))
                for level, (a, g) in enumerate(zip(activations, gradients)):
                    maps[level][:, cls] = self.combine(a.detach(), g)
        grids = [adapter.grid_of(tuple(a.shape[-2:])) for a in activations]
        return merge_levels(rescaled_levels(maps), grids)[0]


def rescaled_levels(maps: List[Tensor]) -> List[Tensor]:
    """Per-level maps made comparable before they are averaged.

    Args:
        maps (list[Tensor]): (B, K, h_l, w_l) maps, one per level.

    Returns:
        list[Tensor]: With more than one level, every (h_l, w_l) map
        rectified and min-max scaled to [0, 1] (``(m - min) / (max - min +
        1e-7)``; a constant map becomes 0), as pytorch-grad-cam does per
        target layer; a single level unchanged.
    """
    if len(maps) == 1:
        return maps
    scaled = []
    for level in maps:
        flat = level.relu().flatten(2)
        flat = flat - flat.amin(dim=-1, keepdim=True)
        scaled.append((flat / (flat.amax(dim=-1, keepdim=True) + 1e-7)).view_as(level))
    return scaled
