"""Recipro-CAM for CNN classifiers (Byun & Lee 2022, arXiv 2209.14074)."""
from typing import TYPE_CHECKING, List, Optional

import torch
from torch import Tensor

from ..registry import EXPLAINERS
from .base import BaseExplainer

if TYPE_CHECKING:
    from ..adapters import ModelAdapter


def spatial_mosaics(features: Tensor) -> Tensor:
    """One copy of each feature map per position, zero everywhere but there.

    Args:
        features (Tensor): (B, C, h, w).

    Returns:
        Tensor: (B * h * w, C, h, w); mosaic ``b * h * w + i * w + j`` keeps
        only ``features[b, :, i, j]``.
    """
    batch, channels, height, width = features.shape
    eye = torch.eye(height * width, dtype=features.dtype, device=features.device)
    masks = eye.reshape(1, height * width, 1, height, width)
    return (features.unsqueeze(1) * masks).reshape(-1, channels, height, width)


@EXPLAINERS.register_module()
class ReciproCAM(BaseExplainer):
    """Class-wise maps from the neck and head run on spatial mosaics.

    ``S[b, c, i, j]`` is the probability of class ``c`` when the network after
    the feature map sees only position ``(i, j)`` of image ``b``'s last feature
    map. All mosaics of the batch run as one batch. When the model averages
    the map right after it (a global average pooling neck, or a backbone that
    pools before its final norm, such as ConvNeXt) the pooled mosaic is
    ``F[:, :, i, j] / (h * w)``, so only those vectors go through the rest of
    the model (final norm, neck, head; no mosaic tensor is built). A layer
    norm after that pooling normalises each position's share with the
    statistics of the image's own pooled vector, as it normalised the image:
    with the share's own, every position alone would be scored as a whole
    image and the probabilities saturate (see
    :func:`mmxai.adapters.classifier.layer_norm_with_statistics_of`).
    """

    algorithm = 'classwisesaliencymap'
    class_wise = True
    value_range = (0.0, 1.0)
    families = ('classification',)

    def check_supported(self, adapter: 'ModelAdapter') -> None:
        super().check_supported(adapter)
        if not adapter.map_decides_scores:
            raise self.unsupported(
                adapter, f'{type(adapter.model.backbone).__name__} also scores its classes '
                'from a transformer branch, so mosaics of its convolution map do not give its '
                'scores')

    def explain(self, adapter: 'ModelAdapter', samples: Optional[list] = None,
                targets: Optional[List[Tensor]] = None) -> Tensor:
        features = adapter.feature_maps()[-1]
        batch, channels, height, width = features.shape
        if adapter.pools_to_vectors:
            pooled = features.flatten(2).transpose(1, 2).reshape(-1, channels)
            scores = adapter.scores_from_pooled(pooled / (height * width),
                                                features.mean((-2, -1)))
        else:
            scores = adapter.scores_from_feature_maps(spatial_mosaics(features))
        return scores.reshape(batch, height, width, -1).permute(0, 3, 1, 2)
