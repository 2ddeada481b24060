"""Geometry of saliency maps: feature cells, pyramid levels, the original image.

Pure tensor code (torch only): explainers merge levels with it, the evaluator
and the writer bring maps back onto the original image with it.
"""
from typing import Any, Dict, List, Sequence, Tuple

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


def resample_cells(maps: Tensor, size: Tuple[int, int], cell_anchor: str = 'start') -> Tensor:
    """Bilinear resampling of feature-cell maps onto a finer pixel grid.

    Cell ``k`` of an input of ``n`` cells covers output pixels ``[k r, (k+1) r)``
    with ``r = N / n``; its value sits at output pixel ``k r`` for
    ``cell_anchor='start'`` and at the block's centre for ``'center'``. Padded
    CNNs are ``'start'``: a stride-2 convolution with "same" padding centres
    output ``k`` on input ``2k``, and MMDetection's priors sit at ``k * stride``
    (placing them at the centre shifts maps by half a cell: 16 px at stride 32).
    Vision-transformer patches are ``'center'`` (same as ``F.interpolate`` with
    ``align_corners=False``). Values beyond the outer cells are held constant.

    Args:
        maps (Tensor): (N, C, h, w) maps.
        size (tuple[int, int]): Output (H, W).
        cell_anchor (str): ``'start'`` or ``'center'``.

    Returns:
        Tensor: (N, C, H, W).
    """
    if cell_anchor not in ('start', 'center'):
        raise ValueError(f"cell_anchor must be 'start' or 'center', got {cell_anchor!r}")
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps

    def source_coordinates(n_out: int, n_in: int) -> Tensor:
        ratio = n_out / n_in
        offset = 0.0 if cell_anchor == 'start' else (ratio - 1) / 2
        pixels = torch.arange(n_out, dtype=torch.float32, device=maps.device)
        cells = ((pixels - offset) / ratio).clamp(0, n_in - 1)
        return cells / max(n_in - 1, 1) * 2 - 1  # grid_sample's align_corners=True

    grid_x, grid_y = torch.meshgrid(source_coordinates(size[1], maps.shape[-1]),
                                    source_coordinates(size[0], maps.shape[-2]), indexing='xy')
    grid = torch.stack([grid_x, grid_y], dim=-1).expand(maps.shape[0], -1, -1, -1)
    return F.grid_sample(maps.float(), grid.to(maps.device), mode='bilinear',
                         padding_mode='border', align_corners=True).to(maps.dtype)


def merge_levels(maps: Sequence[Tensor], cell_anchor: str = 'start') -> Tensor:
    """Average per-level maps at the size of the largest (first FPN) level.

    Args:
        maps (Sequence[Tensor]): (B, K, h_l, w_l) maps, one per level.
        cell_anchor (str): Where a cell's value sits in its stride block
            (see :func:`resample_cells`).

    Returns:
        Tensor: (B, K, h, w) with (h, w) the largest level's size.
    """
    size = max((m.shape[-2:] for m in maps), key=lambda s: s[0] * s[1])
    resized: List[Tensor] = [resample_cells(m, tuple(size), cell_anchor) for m in maps]
    return sum(resized) / len(resized)


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


def to_original_image(maps: Tensor, metainfo: Dict[str, Any]) -> Tensor:
    """Undo the test pipeline for maps of one image; normalise them to [0, 1].

    Args:
        maps (Tensor): (T, h, w) maps covering the padded network input.
        metainfo (dict): The data sample's metainfo: ``explain_input_shape``
            (the padded input), ``img_shape``, ``ori_shape`` and, when present,
            ``explain_cell_anchor`` (see :func:`resample_cells`, default
            ``'start'``), ``scale_factor``, ``flip``/``flip_direction`` and
            ``crop_bbox``.

    Returns:
        Tensor: (T, H, W) float maps in [0, 1] at the original resolution,
        each pixel on the image pixel it explains; where the pipeline cropped
        the image away, the map is 0.
    """
    ori_h, ori_w = metainfo['ori_shape'][:2]
    if maps.shape[0] == 0:  # nothing to explain (e.g. no detection above the threshold)
        return maps.new_zeros((0, ori_h, ori_w), dtype=torch.float32)
    maps = resample_cells(maps.float()[None], tuple(metainfo['explain_input_shape']),
                          metainfo.get('explain_cell_anchor', 'start'))[0]
    img_h, img_w = metainfo['img_shape'][:2]
    maps = maps[:, :img_h, :img_w]  # padding is added at the bottom and right
    if metainfo.get('flip', False):
        direction = metainfo.get('flip_direction', 'horizontal')
        dims = {'horizontal': [-1], 'vertical': [-2], 'diagonal': [-2, -1]}[direction]
        maps = maps.flip(dims)
    maps = normalize_per_map(maps)
    res_h, res_w = resized_shape(metainfo)
    if (res_h, res_w) != (img_h, img_w):
        top, left = crop_offset(metainfo)
        canvas = maps.new_zeros((maps.shape[0], max(res_h, top + img_h), max(res_w, left + img_w)))
        canvas[:, top:top + img_h, left:left + img_w] = maps
        maps = canvas[:, :res_h, :res_w]
    return normalize_per_map(_resize(maps, (ori_h, ori_w)))
