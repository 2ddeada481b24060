"""Geometry of saliency maps: feature cells, pyramid levels, the original image.

Pure tensor code (torch only): explainers merge levels with it, the evaluator
and the writer bring maps back onto the original image with it.
"""
import math
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def normalize_per_map(maps: Tensor) -> Tensor:
    """Min-max normalise each map of (T, H, W) to [0, 1]; a constant map becomes 0."""
    flat = maps.flatten(1)
    low = flat.amin(dim=1).view(-1, 1, 1)
    span = (flat.amax(dim=1).view(-1, 1, 1) - low)
    # In place after one copy: at the original size of a huge image every copy counts.
    normalized = (maps - low).div_(span.clamp_min(torch.finfo(maps.dtype).tiny))
    return normalized.mul_((span > 0).to(maps.dtype))


class CellGrid(NamedTuple):
    """Where the cells of a map sit on the network input (the padded batch).

    Cell ``(i, j)``'s value belongs at the input coordinates
    ``(origin_y + i * stride_y, origin_x + j * stride_x)``, in MMDetection's
    continuous convention: pixel ``p`` spans ``[p, p + 1)``, its centre is
    ``p + 0.5``. MMDetection's priors say where their cells are (an ATSS
    anchor of cell k is centred on ``k * stride``, an FCOS point on
    ``(k + 0.5) * stride``); see :meth:`of_ratio` for maps without priors.
    """

    stride_y: float
    stride_x: float
    origin_y: float
    origin_x: float

    @classmethod
    def of_ratio(cls, input_shape: Tuple[int, int], map_shape: Tuple[int, int],
                 anchor: str = 'start') -> 'CellGrid':
        """The grid of a map that evenly covers the input, without priors.

        Args:
            input_shape (tuple): (H, W) of the network input.
            map_shape (tuple): (h, w) of the map; the stride is ``H / h``.
            anchor (str): ``'start'``: cell k sits on input pixel ``k * stride``
                (padded CNNs: a stride-2 convolution with "same" padding
                centres output k on input 2k); ``'center'``: on the centre of
                its stride block (non-overlapping patches, area pooling).

        Returns:
            CellGrid: The grid.
        """
        if anchor not in ('start', 'center'):
            raise ValueError(f"anchor must be 'start' or 'center', got {anchor!r}")
        stride_y, stride_x = input_shape[0] / map_shape[0], input_shape[1] / map_shape[1]
        if anchor == 'start':
            return cls(stride_y, stride_x, 0.5, 0.5)
        return cls(stride_y, stride_x, stride_y / 2, stride_x / 2)


#: The grid of pixels: cell p is pixel p, whose centre is p + 0.5.
PIXELS = CellGrid(1.0, 1.0, 0.5, 0.5)


class StridedStep(NamedTuple):
    """One strided sampling of a network (a convolution, pooling or unfold window).

    ``in_size`` and ``out_size`` are its input's and output's (h, w); the
    others are per axis (y, x), ``padding`` the rows/columns added before
    the first input cell.
    """

    in_size: Tuple[int, int]
    out_size: Tuple[int, int]
    kernel: Tuple[int, int]
    stride: Tuple[int, int]
    padding: Tuple[int, int]
    dilation: Tuple[int, int]


def strided_chain_grids(steps: Sequence[StridedStep],
                        input_size: Tuple[int, int]) -> Dict[Tuple[int, int], CellGrid]:
    """Where the cells of each resolution of a network sit: the centres of their windows.

    Follows the chain of resolutions from the input, in the order the steps
    ran: a step whose input is the chain's current resolution takes it to its
    output; a step on another resolution (a shortcut's projection beside the
    chain, a later branch) is passed over. Output cell ``k`` of a step reads
    the input cells ``k * stride - padding + [0, dilation * (kernel - 1)]``,
    so its centre sits ``(dilation * (kernel - 1) / 2 - padding)`` input
    cells after input cell ``k * stride``: a padded 3x3 stride-2 convolution
    keeps the origin (ResNet), a 4x4 stride-4 patch embedding moves it to
    the patch's centre (ConvNeXt, Swin).

    Args:
        steps (Sequence[StridedStep]): The strided steps in the order they ran.
        input_size (tuple[int, int]): (H, W) of the network input.

    Returns:
        dict: {(h, w): grid} for each resolution of the chain after the input.
    """
    size, grid = tuple(input_size), PIXELS
    grids: Dict[Tuple[int, int], CellGrid] = {}
    for step in steps:
        if tuple(step.in_size) != size or tuple(step.out_size) == size:
            continue
        shift = [d * (k - 1) / 2 - p for k, p, d in zip(step.kernel, step.padding, step.dilation)]
        grid = CellGrid(grid.stride_y * step.stride[0], grid.stride_x * step.stride[1],
                        grid.origin_y + grid.stride_y * shift[0],
                        grid.origin_x + grid.stride_x * shift[1])
        size = tuple(step.out_size)
        grids[size] = grid
    return grids


def resample_cells(maps: Tensor, size: Tuple[int, int], grid: CellGrid,
                   target: CellGrid = PIXELS, mode: str = 'bilinear') -> Tensor:
    """Bilinear (or nearest-cell) resampling of maps from one cell grid onto another.

    Each target cell takes the bilinear interpolation of the source cells at
    its own position (``mode='nearest'``: the value of the nearest source
    cell); beyond the outer source cells values are held constant.

    Args:
        maps (Tensor): (N, C, h, w) maps whose cells sit on ``grid``.
        size (tuple[int, int]): (H, W) cells of the target.
        grid (CellGrid): Where the source cells sit.
        target (CellGrid): Where the target cells sit (default: pixels).
        mode (str): ``'bilinear'`` or ``'nearest'``.

    Returns:
        Tensor: (N, C, H, W).
    """
    grid, target = CellGrid(*grid), CellGrid(*target)
    if tuple(maps.shape[-2:]) == tuple(size) and grid == target:
        return maps

    def source_cells(n_out: int, n_in: int, stride_in: float, origin_in: float,
                     stride_out: float, origin_out: float) -> Tensor:
        positions = origin_out + stride_out * torch.arange(n_out, dtype=torch.float64)
        cells = ((positions - origin_in) / stride_in).clamp(0, n_in - 1)
        return (cells / max(n_in - 1, 1) * 2 - 1).float()  # grid_sample's align_corners=True

    xs = source_cells(size[1], maps.shape[-1], grid.stride_x, grid.origin_x, target.stride_x,
                      target.origin_x)
    ys = source_cells(size[0], maps.shape[-2], grid.stride_y, grid.origin_y, target.stride_y,
                      target.origin_y)
    grid_x, grid_y = torch.meshgrid(xs, ys, indexing='xy')
    samples = torch.stack([grid_x, grid_y], dim=-1).expand(maps.shape[0], -1, -1, -1)
    return F.grid_sample(maps.float(), samples.to(maps.device), mode=mode,
                         padding_mode='border', align_corners=True).to(maps.dtype)


def merge_levels(maps: Sequence[Tensor], grids: Sequence[CellGrid],
                 reduce: str = 'mean') -> Tuple[Tensor, CellGrid]:
    """Average (or take the max of) per-level maps on the grid of the largest level.

    Each level is resampled at the positions of the largest level's cells,
    each cell read where its own level's grid puts it: bilinearly for the
    mean; for the max, each cell takes its level's nearest cell, so that
    every level's peak reaches the merged map unchanged (bilinear reading
    between a coarse level's cell centres would lower it).

    Args:
        maps (Sequence[Tensor]): (B, K, h_l, w_l) maps, one per level.
        grids (Sequence[CellGrid]): Where each level's cells sit.
        reduce (str): ``'mean'`` or ``'max'`` over the levels.

    Returns:
        tuple: (B, K, h, w) maps with (h, w) the largest level's size, and
        that level's grid.
    """
    largest = max(range(len(maps)), key=lambda level: maps[level].shape[-2:].numel())
    size, target = tuple(maps[largest].shape[-2:]), grids[largest]
    mode = 'nearest' if reduce == 'max' else 'bilinear'
    resized: List[Tensor] = [resample_cells(m, size, g, target, mode)
                             for m, g in zip(maps, grids)]
    if reduce == 'max':
        return torch.stack(resized).amax(0), target
    if reduce != 'mean':
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    return sum(resized) / len(resized), target


def _resize(maps: Tensor, size: Tuple[int, int]) -> Tensor:
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[None], size=size, mode='bilinear', align_corners=False)[0]


def resized_shape(metainfo: Dict[str, Any]) -> Tuple[int, int]:
    """(h, w) of the image after the pipeline's resize, before any crop."""
    ori_h, ori_w = metainfo['ori_shape'][:2]
    scale = metainfo.get('scale_factor', (1.0, 1.0))
    w_scale, h_scale = (scale, scale) if isinstance(scale, (int, float)) else scale[:2]
    return int(round(ori_h * float(h_scale))), int(round(ori_w * float(w_scale)))


def boxes_to_input(boxes: Tensor, metainfo: Dict[str, Any]) -> Tensor:
    """Boxes on the original image -> on the network input (the test pipeline's resize and flip).

    The inverse of MMDetection's ``rescale=True`` for detection pipelines
    (resize, optional flip, padding at the bottom right, or around the image:
    ``RandomCenterCropPad``'s ``border`` in test mode).

    Args:
        boxes (Tensor): (N, 4) ``x1, y1, x2, y2`` in original pixels.
        metainfo (dict): ``scale_factor`` (w, h), ``img_shape`` and, when
            present, ``border`` (top, bottom, left, right) and
            ``flip``/``flip_direction``.

    Returns:
        Tensor: (N, 4) boxes in network-input pixels.
    """
    scale = metainfo.get('scale_factor', (1.0, 1.0))
    w_scale, h_scale = (scale, scale) if isinstance(scale, (int, float)) else scale[:2]
    out = boxes.float() * boxes.new_tensor([w_scale, h_scale, w_scale, h_scale]).float()
    if 'border' in metainfo:
        top, _, left, _ = (float(v) for v in metainfo['border'][:4])
        out = out + out.new_tensor([left, top, left, top])
    if metainfo.get('flip', False):
        height, width = metainfo['img_shape'][:2]
        direction = metainfo.get('flip_direction', 'horizontal')
        if direction in ('horizontal', 'diagonal'):
            out[:, [0, 2]] = width - out[:, [2, 0]]
        if direction in ('vertical', 'diagonal'):
            out[:, [1, 3]] = height - out[:, [3, 1]]
    return out


def paste_masks(masks: Tensor, boxes: Tensor, size: tuple) -> Tensor:
    """Place (N, m, m) masks into their (N, 4) boxes on an (H, W) canvas each.

    Args:
        masks (Tensor): (N, m, m) values in [0, 1].
        boxes (Tensor): (N, 4) ``x1, y1, x2, y2`` in canvas pixels.
        size (tuple): (H, W) of the canvas.

    Returns:
        Tensor: (N, H, W), each mask resampled into its box, 0 outside it.
    """
    height, width = size
    # Each canvas cell reads the mask at its centre, as MMDetection pastes masks.
    ys = torch.arange(height, device=masks.device, dtype=masks.dtype) + 0.5
    xs = torch.arange(width, device=masks.device, dtype=masks.dtype) + 0.5
    x1, y1, x2, y2 = (boxes[:, i, None] for i in range(4))
    # Each canvas cell in the [-1, 1] coordinates of each box.
    grid_y = (ys[None] - y1) / (y2 - y1).clamp_min(1e-6) * 2 - 1
    grid_x = (xs[None] - x1) / (x2 - x1).clamp_min(1e-6) * 2 - 1
    grid = torch.stack([grid_x[:, None, :].expand(-1, height, -1),
                        grid_y[:, :, None].expand(-1, -1, width)], dim=-1)
    return F.grid_sample(masks[:, None], grid, align_corners=False, padding_mode='zeros')[:, 0]


def masks_to_input(masks: Tensor, metainfo: Dict[str, Any], size: Tuple[int, int],
                   input_shape: Tuple[int, int]) -> Tensor:
    """Masks on the original image -> on an (h, w) map evenly split over the network input.

    The inverse of MMDetection's ``rescale=True`` for masks, as
    :func:`boxes_to_input` is for boxes: each mask is flipped as the input was
    and resampled into the box the whole original image occupies on the
    input (after the resize; ``border`` when centred). Each mask is first
    area-averaged to about that box's size in map cells, so a cell holds the
    share of the mask it covers rather than one pixel's value.

    Args:
        masks (Tensor): (N, H, W) masks on the original image (bool or [0, 1]).
        metainfo (dict): As :func:`boxes_to_input` reads it.
        size (tuple): (h, w) of the map.
        input_shape (tuple): (H, W) of the (padded) network input.

    Returns:
        Tensor: (N, h, w) float, 0 outside the image.
    """
    height, width = masks.shape[-2:]
    if metainfo.get('flip', False):
        direction = metainfo.get('flip_direction', 'horizontal')
        if direction in ('horizontal', 'diagonal'):
            masks = masks.flip(-1)
        if direction in ('vertical', 'diagonal'):
            masks = masks.flip(-2)
    image_box = boxes_to_input(torch.tensor([[0.0, 0.0, width, height]], device=masks.device),
                               metainfo)[0]
    image_box = image_box * image_box.new_tensor([size[1] / input_shape[1],
                                                  size[0] / input_shape[0]] * 2)
    cells = (min(height, max(1, math.ceil(float(image_box[3] - image_box[1])))),
             min(width, max(1, math.ceil(float(image_box[2] - image_box[0])))))
    # A few masks at a time: 100 float masks of an 800 x 1333 image would take 400 MB.
    masks = torch.cat([F.adaptive_avg_pool2d(chunk[:, None].float(), cells)[:, 0]
                       for chunk in masks.split(16)]) if len(masks) else \
        masks.new_zeros(0, *cells, dtype=torch.float32)
    return paste_masks(masks, image_box.expand(len(masks), 4), size)


def cells_inside(boxes: Tensor, grid: CellGrid, size: Tuple[int, int]) -> Tensor:
    """Which cells of a map lie inside each box (the one nearest its centre if none does).

    Args:
        boxes (Tensor): (N, 4) boxes on the network input.
        grid (CellGrid): Where the map's cells sit.
        size (tuple): (h, w) of the map.

    Returns:
        Tensor: (N, h, w) bool.
    """
    grid = CellGrid(*grid)
    ys = grid.origin_y + grid.stride_y * torch.arange(size[0], dtype=torch.float32)
    xs = grid.origin_x + grid.stride_x * torch.arange(size[1], dtype=torch.float32)
    boxes = boxes.float().cpu()
    in_y = (ys[None] >= boxes[:, 1:2]) & (ys[None] <= boxes[:, 3:4])  # (N, h)
    in_x = (xs[None] >= boxes[:, 0:1]) & (xs[None] <= boxes[:, 2:3])  # (N, w)
    inside = in_y[:, :, None] & in_x[:, None, :]
    centre_y = ((boxes[:, 1] + boxes[:, 3]) / 2 - grid.origin_y) / grid.stride_y
    centre_x = ((boxes[:, 0] + boxes[:, 2]) / 2 - grid.origin_x) / grid.stride_x
    rows = centre_y.round().long().clamp(0, size[0] - 1)
    cols = centre_x.round().long().clamp(0, size[1] - 1)
    empty = ~inside.flatten(1).any(1)
    inside[empty, rows[empty], cols[empty]] = True
    return inside


def cell_span(map_shape: Tuple[int, int], grid: CellGrid,
              input_shape: Tuple[int, int]) -> Tensor:
    """The input pixels between a map's outermost cell centres, where its values are its own.

    Beyond the outermost cell centres :func:`resample_cells` holds the map
    constant, so a maximum on an outer cell becomes a plateau reaching the
    input's border, whose centre is up to half a cell outside the cell.
    Reading peaks within this span reads them on the cells.

    Args:
        map_shape (tuple): (h, w) of the map.
        grid (CellGrid): Where the map's cells sit.
        input_shape (tuple): (H, W) of the network input.

    Returns:
        Tensor: (H, W) bool, every pixel whose centre lies within half a pixel
        of the span (so a span narrower than a pixel still holds one).
    """
    grid = CellGrid(*grid)

    def along(cells: int, stride: float, origin: float, pixels: int) -> Tensor:
        first, last = origin, origin + stride * (cells - 1)
        centres = torch.arange(pixels, dtype=torch.float64) + 0.5
        return (centres >= first - 0.5) & (centres <= last + 0.5)

    rows = along(map_shape[0], grid.stride_y, grid.origin_y, input_shape[0])
    columns = along(map_shape[1], grid.stride_x, grid.origin_x, input_shape[1])
    return rows[:, None] & columns[None]


def crop_offset(metainfo: Dict[str, Any]) -> Tuple[int, int]:
    """(y, x) of the pipeline's crop inside the resized image.

    An explicit ``crop_bbox`` (x1, y1, x2, y2) in the metainfo wins; otherwise a
    smaller ``img_shape`` than the resized shape is a centre crop, placed as
    MMCV's ``CenterCrop`` places it (the crop every MMPretrain test pipeline uses).
    """
    if 'crop_bbox' in metainfo:
        x1, y1 = metainfo['crop_bbox'][:2]
        return int(y1), int(x1)
    res_h, res_w = resized_shape(metainfo)
    img_h, img_w = metainfo['img_shape'][:2]
    return max(0, int(round((res_h - img_h) / 2.))), max(0, int(round((res_w - img_w) / 2.)))


#: How :func:`to_original_image` scales values: per map (min-max), on the
#: method's own absolute scale, or not at all (the method's values).
NORMALIZE_MODES = ('per_map', 'absolute', 'none')


def to_original_image(maps: Tensor, metainfo: Dict[str, Any], input_shape: Sequence[int],
                      cell_grid: CellGrid, normalize: str = 'per_map',
                      value_range: Optional[Sequence[float]] = None) -> Tensor:
    """Undo the test pipeline for maps of one image.

    Args:
        maps (Tensor): (T, h, w) maps covering the padded network input.
        metainfo (dict): What MMCV's and MMDetection's test transforms record
            of the image: ``img_shape``, ``ori_shape`` and, when present,
            ``scale_factor``, ``flip``/``flip_direction``, ``crop_bbox`` and
            ``border`` (where ``RandomCenterCropPad``, in test mode, put the
            image on its canvas: top, bottom, left, right).
        input_shape (Sequence[int]): (H, W) of the padded network input.
        cell_grid (CellGrid): Where the maps' cells sit on that input.
        normalize (str): ``'per_map'``: each map min-max to [0, 1] (a
            constant map becomes 0); ``'absolute'``: ``value_range`` (the
            method's own, e.g. (0, 1) for class probabilities) mapped to [0,
            1], so a class the model does not see stays low; ``'none'``: the
            method's values as they are.
        value_range (Sequence[float], optional): The method's fixed value
            range; needed for ``'absolute'``.

    Returns:
        Tensor: (T, H, W) float maps at the original resolution, each pixel on
        the image pixel it explains; where the pipeline cropped the image
        away, the map is 0.
    """
    if normalize not in NORMALIZE_MODES:
        raise ValueError(f'normalize must be one of {NORMALIZE_MODES}, got {normalize!r}')
    ori_h, ori_w = metainfo['ori_shape'][:2]
    if maps.shape[0] == 0:  # nothing to explain (e.g. no detection above the threshold)
        return maps.new_zeros((0, ori_h, ori_w), dtype=torch.float32)
    scale = _value_scale(normalize, value_range)
    maps = resample_cells(maps.float()[None], tuple(input_shape), cell_grid)[0]
    img_h, img_w = metainfo['img_shape'][:2]
    maps = maps[:, :img_h, :img_w]  # padding is added at the bottom and right
    if metainfo.get('flip', False):
        direction = metainfo.get('flip_direction', 'horizontal')
        dims = {'horizontal': [-1], 'vertical': [-2], 'diagonal': [-2, -1]}[direction]
        maps = maps.flip(dims)
    if 'border' in metainfo:  # CenterNet, CornerNet: the image centred on a larger canvas
        top, bottom, left, right = (int(round(float(v))) for v in metainfo['border'][:4])
        maps = maps[:, top:bottom, left:right]
        img_h, img_w = bottom - top, right - left
    maps = scale(maps)
    res_h, res_w = resized_shape(metainfo)
    if (res_h, res_w) != (img_h, img_w):
        top, left = crop_offset(metainfo)
        canvas = maps.new_zeros((maps.shape[0], max(res_h, top + img_h), max(res_w, left + img_w)))
        canvas[:, top:top + img_h, left:left + img_w] = maps
        maps = canvas[:, :res_h, :res_w]
    maps = _resize(maps, (ori_h, ori_w))
    return normalize_per_map(maps) if normalize == 'per_map' else maps


def cell_span_on_original_image(map_shape: Tuple[int, int], cell_grid: CellGrid,
                                metainfo: Dict[str, Any], input_shape: Sequence[int]) -> Tensor:
    """:func:`cell_span` brought onto the original image as :func:`to_original_image` brings maps.

    Args:
        map_shape (tuple): (h, w) of the map.
        cell_grid (CellGrid): Where the map's cells sit on the network input.
        metainfo (dict): The image's test-pipeline metainfo.
        input_shape (Sequence[int]): (H, W) of the padded network input.

    Returns:
        Tensor: (H, W) bool at the original resolution; pixels that the
        span touches after resizing count (so it never vanishes).
    """
    span = cell_span(tuple(map_shape), cell_grid, tuple(input_shape)).float()
    return to_original_image(span[None], metainfo, input_shape, PIXELS, 'none')[0] > 0


def _value_scale(normalize: str, value_range: Optional[Sequence[float]]
                 ) -> Callable[[Tensor], Tensor]:
    if normalize == 'per_map':
        return normalize_per_map
    if normalize == 'none':
        return lambda maps: maps
    if value_range is None:
        raise ValueError("these maps have no absolute scale; use normalize='per_map'")
    low, high = (float(v) for v in value_range)
    return lambda maps: ((maps - low) / (high - low)).clamp_(0, 1)
