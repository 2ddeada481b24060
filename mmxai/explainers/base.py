"""The base class every saliency method derives from."""
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from torch import Tensor

from ..utils.errors import UserInputError
from ..visualization.geometry import resample_cells

if TYPE_CHECKING:
    from ..models.adapters import ModelAdapter


class UnsupportedModelError(UserInputError, ValueError):
    """The model cannot be explained by the requested algorithm."""


class BaseExplainer:
    """Turns what one forward pass captured into saliency maps.

    A subclass implements :meth:`explain`, returning float maps of shape
    (B, K, h, w) for class-wise methods (``class_wise = True``) or (B, 1, h, w)
    for class-agnostic ones, in the coordinates of the network input (the
    padded batch), at the resolution of a feature map. Larger values mean more
    evidence; the scale is the method's own (files are min-max normalised).
    """

    #: Name used by ``--explain-algorithm`` and in file names.
    name: str = ''
    #: Whether :meth:`explain` returns one map per class.
    class_wise: bool = False
    #: Tasks (``'detection'``, ``'classification'``) the method serves.
    tasks: Tuple[str, ...] = ('detection', 'classification')

    def check_supported(self, adapter: 'ModelAdapter') -> None:
        """Raise ``UnsupportedModelError`` if this method cannot explain the model."""
        if adapter.task not in self.tasks:
            raise UnsupportedModelError(
                f'{self.name} does not support {type(adapter.model).__name__} '
                f'({adapter.task}); it supports: {", ".join(self.tasks)}')

    def explain(self, adapter: 'ModelAdapter', samples: Optional[list] = None,
                targets: Optional[List[Tensor]] = None) -> Tensor:
        """Saliency maps from the adapter's captured forward pass.

        Args:
            adapter (ModelAdapter): Holds what the forward pass captured.
            samples (list, optional): The predicted data samples of the batch
                (methods that explain predicted boxes read them).
            targets (list[Tensor], optional): Per image, the class indices
                that will be kept. Methods whose cost grows with the number of
                classes compute only these (other classes' maps stay 0); None
                means every class.
        """
        raise NotImplementedError

    def __call__(self, adapter: 'ModelAdapter', samples: Optional[list] = None,
                 targets: Optional[List[Tensor]] = None) -> Tensor:
        return self.explain(adapter, samples, targets)


def quarter_resolution_maps(adapter: 'ModelAdapter') -> Tuple[Tensor, Tensor]:
    """The captured network input and zero (B, K, H/4, W/4) maps over it.

    For methods whose maps are not tied to a feature map (masks, RoIs): 1/4
    of the input resolution is finer than any detector's first FPN level.
    """
    inputs = adapter.captured('backbone_input')
    batch, _, height, width = inputs.shape
    size = (max(1, height // 4), max(1, width // 4))
    return inputs, inputs.new_zeros(batch, adapter.num_classes, *size)


def merge_levels(maps: Sequence[Tensor], cell_anchor: str = 'start') -> Tensor:
    """Average per-level maps at the size of the largest (first FPN) level.

    Args:
        maps (Sequence[Tensor]): (B, K, h_l, w_l) maps, one per level.
        cell_anchor (str): Where a cell's value sits in its stride block
            (see :func:`mmxai.visualization.resample_cells`).

    Returns:
        Tensor: (B, K, h, w) with (h, w) the largest level's size.
    """
    size = max((m.shape[-2:] for m in maps), key=lambda s: s[0] * s[1])
    resized: List[Tensor] = [resample_cells(m, tuple(size), cell_anchor) for m in maps]
    return sum(resized) / len(resized)
