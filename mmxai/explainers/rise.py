"""RISE (Petsiuk et al. 2018, arXiv 1806.07421) for classifiers."""
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..geometry import CellGrid
from ..registry import EXPLAINERS
from .base import BaseExplainer, input_cell_grid, quarter_resolution_maps

if TYPE_CHECKING:
    from ..adapters import ModelAdapter


def rise_masks(num_masks: int, input_shape: Tuple[int, int], grid_size: int, keep_prob: float,
               seed: int, batch_size: int, device: torch.device) -> Iterator[Tensor]:
    """RISE's random masks, ``batch_size`` at a time, the same for a seed.

    Each mask is a ``grid_size`` x ``grid_size`` grid of cells kept with
    probability ``keep_prob``, bilinearly upsampled to ``grid_size + 1`` cells
    of the input size and cropped at a random shift below one cell, so its
    soft edges fall anywhere.

    Yields:
        Tensor: (n, H, W) masks in [0, 1] on ``device``.
    """
    height, width = input_shape
    cell_h, cell_w = -(-height // grid_size), -(-width // grid_size)
    generator = torch.Generator().manual_seed(seed)
    grids = (torch.rand(num_masks, 1, grid_size, grid_size, generator=generator)
             < keep_prob).float()
    shifts_y = torch.randint(0, cell_h, (num_masks,), generator=generator).tolist()
    shifts_x = torch.randint(0, cell_w, (num_masks,), generator=generator).tolist()
    for start in range(0, num_masks, batch_size):
        upsampled = F.interpolate(grids[start:start + batch_size].to(device),
                                  size=((grid_size + 1) * cell_h, (grid_size + 1) * cell_w),
                                  mode='bilinear', align_corners=False)[:, 0].clamp_(0, 1)
        yield torch.stack([mask[y:y + height, x:x + width] for mask, y, x in zip(
            upsampled, shifts_y[start:start + batch_size], shifts_x[start:start + batch_size])])


class RandomMaskExplainer(BaseExplainer):
    """The black-box base of RISE and D-RISE: score masked inputs, weight the masks.

    ``S = sum_i (w_i - mean(w)) M_i / (N p)`` where ``w_i`` is the score of
    the input multiplied by mask ``M_i`` (masked pixels become 0 after
    normalisation, the data preprocessor's mean colour). The papers' sum
    without ``- mean(w)`` differs from this by ``mean(w) sum_i M_i / (N p)``,
    which carries no information about the model (``E[M] = p`` everywhere)
    but, with a finite number of masks, adds their own unevenness; when the
    score rarely changes (an object that a few visible pixels identify) that
    noise is larger than the signal, so it is removed. The model runs
    ``num_masks`` times per image, ``batch_size`` masks at a time. Maps are
    returned at 1/4 of the network input's resolution (masks are smooth at
    that scale).

    Args:
        num_masks (int): Masks per image.
        grid_size (int): Cells per side of a mask's grid.
        keep_prob (float): Probability that a cell is kept.
        seed (int): Seed of the masks; a seed gives the same maps.
        batch_size (int): Masked inputs per forward pass.
    """

    class_wise = True
    black_box = True

    def __init__(self, num_masks: int = 1000, grid_size: int = 8, keep_prob: float = 0.5,
                 seed: int = 0, batch_size: int = 32) -> None:
        self.num_masks = num_masks
        self.grid_size = grid_size
        self.keep_prob = keep_prob
        self.seed = seed
        self.batch_size = batch_size

    def map_grid(self, adapter: 'ModelAdapter', size: Tuple[int, int]) -> CellGrid:
        return input_cell_grid(adapter, size)  # masks area-pooled over each cell

    def mask_weights(self, adapter: 'ModelAdapter', masked: Tensor, image: int,
                     samples: Optional[list], classes: Tensor) -> Tensor:
        """(n, len(classes)) weights of the masks that made ``masked`` (image ``image``)."""
        raise NotImplementedError

    def classes_with_targets(self, samples: Optional[list], image: int, classes: Tensor) -> Tensor:
        """The classes whose maps can be non-zero; the model runs only if there are some."""
        return classes

    def explain(self, adapter: 'ModelAdapter', samples: Optional[list] = None,
                targets: Optional[List[Tensor]] = None) -> Tensor:
        inputs, maps = quarter_resolution_maps(adapter)
        explained = {}  # image -> the classes whose maps are computed
        for image in range(len(inputs)):
            classes = torch.arange(adapter.num_classes) if targets is None else \
                targets[image].unique()
            classes = self.classes_with_targets(samples, image, classes)
            if len(classes):
                explained[image] = classes
        weighted = self.weighted_masks(
            inputs, tuple(maps.shape[-2:]), {image: len(c) for image, c in explained.items()},
            lambda masked, image: self.mask_weights(adapter, masked, image, samples,
                                                    explained[image]))
        for image, classes in explained.items():
            maps[image, classes.to(maps.device)] = weighted[image]
        return maps

    def weighted_masks(self, inputs: Tensor, size: Tuple[int, int], columns: Dict[int, int],
                       weigh: Callable[[Tensor, int], Tensor]) -> Dict[int, Tensor]:
        """``sum_i (w_i - mean(w)) M_i / (N p)`` for every column (class or box) of each image.

        Args:
            inputs (Tensor): (B, 3, H, W) the network input.
            size (tuple): (h, w) of the maps.
            columns (dict): Image index -> how many maps it gets.
            weigh (Callable): (masked inputs (n, 3, H, W), image) -> (n, columns)
                weights of the masks that made them.

        Returns:
            dict: Image index -> (columns, h, w) maps.
        """
        height, width = inputs.shape[-2:]
        columns = {image: count for image, count in columns.items() if count}
        weighted = {image: inputs.new_zeros(count, size[0] * size[1])
                    for image, count in columns.items()}
        weight_sums = {image: inputs.new_zeros(count) for image, count in columns.items()}
        mask_sum = inputs.new_zeros(size[0] * size[1])
        if columns:
            # One set of masks serves every image of the batch (same size, same seed).
            for masks in rise_masks(self.num_masks, (height, width), self.grid_size,
                                    self.keep_prob, self.seed, self.batch_size, inputs.device):
                small = F.interpolate(masks[:, None], size=size, mode='area').flatten(1)
                mask_sum += small.sum(0)
                for image in columns:
                    weights = weigh(inputs[image] * masks[:, None], image)
                    weighted[image] += weights.T @ small
                    weight_sums[image] += weights.sum(0)
        return {image: ((weighted[image] - weight_sums[image][:, None] * mask_sum[None] /
                         self.num_masks) / (self.num_masks * self.keep_prob)).view(-1, *size)
                for image in columns}


@EXPLAINERS.register_module()
class RISE(RandomMaskExplainer):
    """RISE: a mask's weight is the class probability of the masked image.

    Works for any classifier (CNN or transformer), with no access to its
    internals; see :class:`RandomMaskExplainer` for the arguments.
    """

    algorithm = 'rise'
    families = ('classification', 'vision_transformer')

    def mask_weights(self, adapter: 'ModelAdapter', masked: Tensor, image: int,
                     samples: Optional[list], classes: Tensor) -> Tensor:
        return adapter.probabilities_of_inputs(masked)[:, classes.to(masked.device)]
