"""Grad-CAM (Selvaraju et al. 2017, arXiv 1610.02391)."""
from torch import Tensor

from ..registry import EXPLAINERS
from .base_gradient_cam import BaseGradientCAM


@EXPLAINERS.register_module()
class GradCAM(BaseGradientCAM):
    """``ReLU(sum_k w_k A_k)`` with ``w_k`` the spatial mean of the gradient of channel k."""

    algorithm = 'gradcam'

    @staticmethod
    def combine(activations: Tensor, gradients: Tensor) -> Tensor:
        weights = gradients.mean(dim=(2, 3), keepdim=True)
        return (weights * activations).sum(1).relu()
