"""XGrad-CAM (Fu et al. 2020, arXiv 2008.02312)."""
from torch import Tensor

from ..registry import EXPLAINERS
from .base_gradient_cam import BaseGradientCAM


@EXPLAINERS.register_module()
class XGradCAM(BaseGradientCAM):
    """Channel weights: gradients averaged with the activations' own spatial weights."""

    algorithm = 'xgradcam'

    @staticmethod
    def combine(activations: Tensor, gradients: Tensor) -> Tensor:
        total = activations.sum(dim=(2, 3), keepdim=True)
        weights = (gradients * activations).sum(dim=(2, 3), keepdim=True) / (total + 1e-7)
        return (weights * activations).sum(1).relu()
