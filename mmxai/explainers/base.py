"""The base class every saliency method derives from."""
from typing import TYPE_CHECKING, List, Optional, Tuple

from torch import Tensor

from ..geometry import CellGrid
from ..utils.errors import UnsupportedModelError

if TYPE_CHECKING:
    from ..adapters import ModelAdapter

#: Every model family an adapter can be (adapter ``family``): the families of a
#: method that reads only feature maps.
ALL_FAMILIES = ('detection', 'two_stage_detection', 'query_detection', 'instance_segmentation',
                'mask_prediction', 'classification', 'vision_transformer')


class BaseExplainer:
    """Turns what one forward pass captured into saliency maps.

    A subclass implements :meth:`explain`, returning float maps of shape
    (B, K, h, w) for class-wise methods (``class_wise = True``) or (B, 1, h, w)
    for class-agnostic ones, in the coordinates of the network input (the
    padded batch), at the resolution of a feature map. Larger values mean more
    evidence; the scale is the method's own (files are min-max normalised).
    What the method needs from a model is checked in :meth:`check_supported`,
    before any computation.
    """

    #: The ``--explain-algorithm`` name this class implements (for its families).
    algorithm: str = ''
    #: Model families (adapter ``family``) the class serves.
    families: Tuple[str, ...] = ()
    #: Whether :meth:`explain` returns one map per class.
    class_wise: bool = False
    #: Whether the model runs once per random mask (hundreds of passes per image).
    black_box: bool = False
    #: Whether a class maps only through the model's detections of it (D-RISE, mask
    #: class maps): a class the model did not detect has an all-zero map.
    maps_detections_only: bool = False
    #: The fixed range of the method's values (class probabilities: (0, 1)), or
    #: None when the scale depends on the model and image (no absolute scale).
    value_range: Optional[Tuple[float, float]] = None

    def check_supported(self, adapter: 'ModelAdapter') -> None:
        """Raise ``UnsupportedModelError`` if this method cannot explain the model.

        The message says why; :func:`~mmxai.explainers.explainer_for` adds the
        methods that do explain the model.
        """
        if adapter.family not in self.families:
            raise UnsupportedModelError(
                f'{self.algorithm} ({type(self).__name__}) does not support '
                f'{type(adapter.model).__name__} ({adapter.family}); it supports: '
                f'{", ".join(self.families)}')

    def unsupported(self, adapter: 'ModelAdapter', why: str) -> UnsupportedModelError:
        """The error refusing the adapter's model, ``why`` being a fact about the model."""
        return UnsupportedModelError(
            f'{self.algorithm} does not support {type(adapter.model).__name__}: {why}')

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

    def explain_boxes(self, adapter: 'ModelAdapter', samples: list, boxes: List[Tensor],
                      labels: List[Tensor]) -> List[Tensor]:
        """Saliency maps of target boxes (predicted, annotated or given), one per box.

        Args:
            adapter (ModelAdapter): Holds what the forward pass captured.
            samples (list): The predicted data samples of the batch.
            boxes (list[Tensor]): Per image, (N, 4) boxes ``x1, y1, x2, y2`` in
                network-input pixels.
            labels (list[Tensor]): Per image, (N,) the boxes' classes.

        Returns:
            list[Tensor]: Per image, (N, h, w) maps on the grid of
            :meth:`map_grid`, in the method's own values.

        Raises:
            UnsupportedModelError: For methods without per-box maps.
        """
        self.check_box_maps_supported(adapter)
        raise NotImplementedError

    def check_box_maps_supported(self, adapter: Optional['ModelAdapter'] = None) -> None:
        """Raise ``UnsupportedModelError`` if this method has no per-box maps (for the model).

        A method has them when it overrides :meth:`explain_boxes`.
        """
        if type(self).explain_boxes is BaseExplainer.explain_boxes:
            raise UnsupportedModelError(
                f'{self.algorithm} ({type(self).__name__}) has no per-box maps; per-box and '
                'ground-truth explanations need classwisesaliencymap (single-stage detectors, '
                'mask class maps) or drise')

    def map_grid(self, adapter: 'ModelAdapter', size: Tuple[int, int]) -> CellGrid:
        """Where the cells of this method's (h, w) maps sit on the network input.

        By default the maps are on a feature level (merged levels are on the
        largest one), placed as the adapter says.
        """
        return adapter.grid_of(size)


def quarter_resolution_maps(adapter: 'ModelAdapter') -> Tuple[Tensor, Tensor]:
    """The captured network input and zero (B, K, H/4, W/4) maps over it.

    For methods whose maps are not tied to a feature map (masks, RoIs): 1/4
    of the input resolution is finer than any detector's first FPN level.
    """
    inputs = adapter.captured('backbone_input')
    batch, _, height, width = inputs.shape
    size = (max(1, height // 4), max(1, width // 4))
    return inputs, inputs.new_zeros(batch, adapter.num_classes, *size)


def input_cell_grid(adapter: 'ModelAdapter', size: Tuple[int, int]) -> CellGrid:
    """The grid of maps that evenly split the input, each cell's value at its centre.

    For :func:`quarter_resolution_maps`: masks pooled over a cell, and soft
    masks sampled at cell centres, belong there.
    """
    return CellGrid.of_ratio(adapter.input_shape, size, 'center')
