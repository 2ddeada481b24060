"""EigenCAM: projection on the first principal component of the features."""
from typing import TYPE_CHECKING, List, Optional

import torch
from torch import Tensor

from ..geometry import merge_levels
from ..registry import EXPLAINERS
from .activation_map import activation_strength
from .base import ALL_FAMILIES, BaseExplainer

if TYPE_CHECKING:
    from ..adapters import ModelAdapter


def first_component_projection(features: Tensor, non_negative: bool) -> Tensor:
    """Project centred features on their first principal direction.

    Args:
        features (Tensor): (B, C, h, w) feature maps.
        non_negative (bool): Whether they come out of a non-negative
            activation (chooses the activation map the sign agrees with).

    Returns:
        Tensor: (B, 1, h, w). The sign is chosen so the map correlates
        positively with the activation map (:func:`activation_strength`).
    """
    batch, channels, height, width = features.shape
    positions = features.flatten(2).transpose(1, 2).double()  # (B, hw, C)
    centred = positions - positions.mean(dim=1, keepdim=True)
    # With centred = U S V^T, the projection on the first right-singular
    # vector is centred v1 = s1 u1. Both come from the eigen-decomposition of
    # the smaller Gram matrix: C x C (v1) for FPN levels, where hw is large;
    # hw x hw (u1, s1^2) for a classifier's last stage (8 x 8 x 512: 64 x 64).
    if height * width < channels:
        values, vectors = torch.linalg.eigh(centred @ centred.transpose(1, 2))
        projection = vectors[:, :, -1:] * values[:, -1:, None].clamp_min(0).sqrt()
    else:
        _, vectors = torch.linalg.eigh(centred.transpose(1, 2) @ centred)
        projection = centred @ vectors[:, :, -1:]  # (B, hw, 1)
    activation = activation_strength(features.double(), non_negative).flatten(2).transpose(1, 2)
    agreement = ((projection - projection.mean(1, keepdim=True)) *
                 (activation - activation.mean(1, keepdim=True))).sum(dim=1, keepdim=True)
    projection = projection * torch.where(agreement < 0, -1.0, 1.0).to(projection)
    return projection.transpose(1, 2).reshape(batch, 1, height, width).to(features.dtype)


@EXPLAINERS.register_module()
class EigenCAM(BaseExplainer):
    """Class-agnostic EigenCAM (Muhammad & Yeasin 2020), batched in torch.

    For detectors it is computed per FPN level and the levels are averaged.
    The sign follows the activation map, whose rule (channel mean or L2 norm)
    comes from the model (see :func:`activation_strength`).
    """

    algorithm = 'eigencam'
    families = ALL_FAMILIES

    def explain(self, adapter: 'ModelAdapter', samples: Optional[list] = None,
                targets: Optional[List[Tensor]] = None) -> Tensor:
        non_negative = adapter.features_non_negative
        projections = [first_component_projection(f, non_negative)
                       for f in adapter.feature_maps()]
        return merge_levels(projections, adapter.level_grids())[0]
