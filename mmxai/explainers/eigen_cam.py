"""EigenCAM: projection on the first principal component of the features."""
from typing import TYPE_CHECKING, List, Optional

import torch
from torch import Tensor

from ..geometry import merge_levels
from ..registry import EXPLAINERS
from .activation_map import activation_strength
from .base import BaseExplainer

if TYPE_CHECKING:
    from ..adapters import ModelAdapter


def first_component_projection(features: Tensor) -> Tensor:
    """Project centred features on their first principal direction.

    Args:
        features (Tensor): (B, C, h, w) feature maps.

    Returns:
        Tensor: (B, 1, h, w). The sign is chosen so the map correlates
        positively with the activation map (:func:`activation_strength`).
    """
    batch, channels, height, width = features.shape
    positions = features.flatten(2).transpose(1, 2).double()  # (B, hw, C)
    centred = positions - positions.mean(dim=1, keepdim=True)
    # The first right-singular vector of the (hw, C) matrix is the top
    # eigenvector of its (C, C) Gram matrix: a batched eigh on C x C is far
    # cheaper than an SVD of hw x C when hw is large (FPN levels).
    _, vectors = torch.linalg.eigh(centred.transpose(1, 2) @ centred)
    projection = centred @ vectors[:, :, -1:]  # (B, hw, 1)
    activation = activation_strength(features.double()).flatten(2).transpose(1, 2)
    agreement = ((projection - projection.mean(1, keepdim=True)) *
                 (activation - activation.mean(1, keepdim=True))).sum(dim=1, keepdim=True)
    projection = projection * torch.where(agreement < 0, -1.0, 1.0).to(projection)
    return projection.transpose(1, 2).reshape(batch, 1, height, width).to(features.dtype)


@EXPLAINERS.register_module()
class EigenCAM(BaseExplainer):
    """Class-agnostic EigenCAM (Muhammad & Yeasin 2020), batched in torch.

    For detectors it is computed per FPN level and the levels are averaged.
    """

    algorithm = 'eigencam'
    families = ('detection', 'instance_segmentation', 'classification', 'vision_transformer')

    def explain(self, adapter: 'ModelAdapter', samples: Optional[list] = None,
                targets: Optional[List[Tensor]] = None) -> Tensor:
        projections = [first_component_projection(f) for f in adapter.feature_maps()]
        return merge_levels(projections, adapter.level_grids())[0]
