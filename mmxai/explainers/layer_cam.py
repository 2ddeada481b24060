"""LayerCAM (Jiang et al. 2021, IEEE TIP) and HiResCAM (Draelos & Carin 2020)."""
from torch import Tensor

from ..registry import EXPLAINERS
from .base_gradient_cam import BaseGradientCAM


@EXPLAINERS.register_module()
class LayerCAM(BaseGradientCAM):
    """``ReLU(sum_k ReLU(G_k) * A_k)``: positive gradients weight each position."""

    algorithm = 'layercam'

    @staticmethod
    def combine(activations: Tensor, gradients: Tensor) -> Tensor:
        return (gradients.relu() * activations).sum(1).relu()


@EXPLAINERS.register_module()
class HiResCAM(BaseGradientCAM):
    """``ReLU(sum_k G_k * A_k)``: LayerCAM without clipping the gradients."""

    algorithm = 'hirescam'

    @staticmethod
    def combine(activations: Tensor, gradients: Tensor) -> Tensor:
        return (gradients * activations).sum(1).relu()
