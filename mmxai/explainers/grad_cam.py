"""Grad-CAM (Selvaraju et al. 2017, arXiv 1610.02391)."""
from torch import Tensor

from ..registry import EXPLAINERS
from .gradient_cam import GradientCAM


@EXPLAINERS.register_module()
class GradCAM(GradientCAM):
    """``ReLU(sum_k w_k A_k)`` with ``w_k`` the spatial mean of the gradient of channel k."""

    name = 'gradcam'

    @staticmethod
    def combine(activations: Tensor, gradients: Tensor) -> Tensor:
        weights = gradients.mean(dim=(2, 3), keepdim=True)
        return (weights * activations).sum(1).relu()
