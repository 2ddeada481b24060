"""LayerCAM (Jiang et al. 2021, IEEE TIP) and HiResCAM (Draelos & Carin 2020)."""
from torch import Tensor

from ..registry import EXPLAINERS
from .gradient_cam import GradientCAM


@EXPLAINERS.register_module()
class LayerCAM(GradientCAM):
    """``ReLU(sum_k ReLU(G_k) * A_k)``: positive gradients weight each position."""

    name = 'layercam'

    @staticmethod
    def combine(activations: Tensor, gradients: Tensor) -> Tensor:
        return (gradients.relu() * activations).sum(1).relu()


@EXPLAINERS.register_module()
class HiResCAM(GradientCAM):
    """``ReLU(sum_k G_k * A_k)``: LayerCAM without clipping the gradients."""

    name = 'hirescam'

    @staticmethod
    def combine(activations: Tensor, gradients: Tensor) -> Tensor:
        return (gradients * activations).sum(1).relu()
