"""Grad-CAM++ (Chattopadhyay et al. 2018, arXiv 1710.11063)."""
import torch
from torch import Tensor

from ..registry import EXPLAINERS
from .base_gradient_cam import BaseGradientCAM


@EXPLAINERS.register_module()
class GradCAMPlusPlus(BaseGradientCAM):
    """Channel weights ``sum_ij alpha_kij ReLU(G_kij)`` with the paper's closed-form alpha.

    ``alpha = G^2 / (2 G^2 + sum_ab A_kab G^3)``, the exponential-score form
    used by the paper's code and pytorch-grad-cam; 0 where the gradient is 0.
    """

    algorithm = 'gradcampp'

    @staticmethod
    def combine(activations: Tensor, gradients: Tensor) -> Tensor:
        squared, cubed = gradients.pow(2), gradients.pow(3)
        denominator = 2 * squared + activations.sum(dim=(2, 3), keepdim=True) * cubed
        nonzero = denominator != 0
        alpha = torch.where(nonzero, squared / torch.where(nonzero, denominator, 1.0), 0.0)
        weights = (alpha * gradients.relu()).sum(dim=(2, 3), keepdim=True)
        return (weights * activations).sum(1).relu()
