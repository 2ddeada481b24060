"""Saliency quality metrics as batched torch functions.

Every map is read in one value space: float (H, W) maps in [0, 1] at the
original image resolution, as ``--save-raw`` writes them.
"""
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

# Bilinear resizing of a flat region leaves float32 rounding noise of about
# 1e-7 of the map's range; values this close to the maximum count as maximal.
PLATEAU_TOLERANCE = 1e-5


def peak_points(maps: Tensor, within: Optional[Tensor] = None) -> Tensor:
    """Each map's maximum point, in pixel coordinates (pixel centres at .5).

    Where the maximum is a plateau (maps that place a probability on a whole
    box, such as RoI class maps), the point is the maximal pixel nearest the
    plateau's centroid. ``argmax`` alone would take the plateau's first pixel
    in row-major order, its top-left corner: a point that depends on the
    flattening order, not on the map, so the same map flipped would point
    elsewhere.

    Args:
        maps (Tensor): (N, H, W) maps.
        within (Tensor, optional): (N, H, W) or (H, W) bool, the pixels
            where the maximum is looked for: the span of the map's cells
            (:func:`mmxai.models.peak_region_on_original_image`), outside
            which the map repeats its outer cells. A map whose region is
            empty is read everywhere. Defaults to every pixel.

    Returns:
        Tensor: (N, 2) float ``x, y``.
    """
    flat = maps.flatten(1).double()
    if within is None:
        allowed = torch.ones_like(flat, dtype=torch.bool)
    else:
        allowed = within.to(maps.device).expand_as(maps).flatten(1)
        allowed = allowed | ~allowed.any(dim=1, keepdim=True)
    top = flat.masked_fill(~allowed, float('-inf')).max(dim=1, keepdim=True).values
    bottom = flat.masked_fill(~allowed, float('inf')).min(dim=1, keepdim=True).values
    maximal = allowed & (flat >= top - PLATEAU_TOLERANCE * (top - bottom))
    height, width = maps.shape[-2:]
    index = torch.arange(height * width, device=maps.device)
    xs, ys = (index % width).double(), (index // width).double()
    count = maximal.sum(dim=1, keepdim=True)
    centre_x = (maximal * xs).sum(dim=1, keepdim=True) / count
    centre_y = (maximal * ys).sum(dim=1, keepdim=True) / count
    distance = ((xs - centre_x) ** 2 + (ys - centre_y) ** 2).masked_fill(~maximal, float('inf'))
    nearest = distance.argmin(dim=1)
    return torch.stack([nearest % width, nearest // width], dim=1).float() + 0.5


def pointing_game_hits(maps: Tensor, boxes: Sequence[Tensor], tolerance: float = 0.0,
                       within: Optional[Tensor] = None) -> Tensor:
    """Whether each map's maximum (:func:`peak_points`) lies in a box or ``tolerance`` px of it.

    Args:
        maps (Tensor): (N, H, W) saliency maps.
        boxes (Sequence[Tensor]): Per map, (n_i, 4) boxes (x1, y1, x2, y2) in
            pixels, x2/y2 exclusive; a map with no box never hits.
        tolerance (float): Distance in pixels from the maximum to the box that
            still counts as a hit (TorchRay's pointing game uses 15).
        within (Tensor, optional): Where the maximum is looked for, as in
            :func:`peak_points`.

    Returns:
        Tensor: (N,) bool.
    """
    hits = []
    for (x, y), map_boxes in zip(peak_points(maps, within).tolist(), boxes):
        if len(map_boxes) == 0:
            hits.append(torch.tensor(False))
            continue
        b = map_boxes.to(maps.device).float()
        dx = torch.clamp(torch.maximum(b[:, 0] - x, x - b[:, 2]), min=0)
        dy = torch.clamp(torch.maximum(b[:, 1] - y, y - b[:, 3]), min=0)
        hits.append(((dx ** 2 + dy ** 2).sqrt() <= tolerance).any().cpu())
    return torch.stack(hits)


def _area(curves: Tensor) -> Tensor:
    """Normalised area under curves sampled at evenly spaced fractions [0, 1]."""
    return torch.trapezoid(curves, dx=1.0 / (curves.shape[1] - 1), dim=1)


def insertion_deletion(score: Callable[[Tensor], Tensor], images: Tensor, maps: Tensor,
                       insertion_canvas: Tensor, deletion_canvas: Tensor,
                       steps: int = 16, valid: Optional[Tensor] = None) -> Dict[str, Tensor]:
    """Insertion and deletion curves and their areas (Petsiuk et al. 2018).

    Pixels are ordered by saliency (ties by position). Deletion replaces the
    top fraction of pixels of the image with the deletion canvas (RISE: black),
    insertion puts them onto the insertion canvas (RISE: a blurred copy); the
    class score is recorded after each of ``steps`` equal steps. All images
    are scored in one call per step and curve. With ``valid``, each image's
    curve runs over its own valid pixels only (the fractions count them, not
    the batch's padded size); the other pixels (padding) keep their value in
    every step of both curves.

    Args:
        score (Callable): (N, C, H, W) images -> (N,) class scores in [0, 1].
        images (Tensor): (N, C, H, W) images.
        maps (Tensor): (N, H, W) saliency maps.
        insertion_canvas (Tensor): (N, C, H, W) the start of insertion.
        deletion_canvas (Tensor): (N, C, H, W) what deleted pixels become.
        steps (int): Number of steps from 0 to all pixels.
        valid (Tensor, optional): (N, H, W) bool, the pixels of each image
            (``False`` on padding). Defaults to every pixel.

    Returns:
        dict: ``insertion`` and ``deletion`` curves (N, steps + 1) and their
        areas ``insertion_auc`` and ``deletion_auc`` (N,) in [0, 1] for
        scores in [0, 1]. Higher insertion and lower deletion are better.
    """
    batch, _, height, width = images.shape
    if valid is None:
        valid = torch.ones_like(maps, dtype=torch.bool)
    ranked = maps.masked_fill(~valid, float('-inf'))  # padding last, never reached
    order = ranked.flatten(1).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(height * width, device=maps.device).expand(batch, -1))
    rank = rank.view(batch, 1, height, width)
    counts = valid.flatten(1).sum(1).double().view(batch, 1, 1, 1)
    insertion_canvas = torch.where(valid[:, None], insertion_canvas, images)
    insertion, deletion = [], []
    for step in range(steps + 1):
        shown = rank < torch.round(step / steps * counts)  # each image's top pixels so far
        insertion.append(score(torch.where(shown, images, insertion_canvas)))
        deletion.append(score(torch.where(shown, deletion_canvas, images)))
    curves = dict(insertion=torch.stack(insertion, 1), deletion=torch.stack(deletion, 1))
    curves.update(insertion_auc=_area(curves['insertion']), deletion_auc=_area(curves['deletion']))
    return curves


def masked_mean(maps: Tensor, valid: Optional[Tensor] = None) -> Tensor:
    """Mean of each (N, ...) map over its valid elements (all when ``valid`` is None).

    Args:
        maps (Tensor): (N, ...) maps.
        valid (Tensor, optional): Bool, the shape of ``maps``.

    Returns:
        Tensor: (N,) means.
    """
    if valid is None:
        return maps.flatten(1).mean(1)
    weights = valid.flatten(1).to(maps.dtype)
    return (maps.flatten(1) * weights).sum(1) / weights.sum(1).clamp_min(1)


def pearson(a: Tensor, b: Tensor, valid: Optional[Tensor] = None) -> Tensor:
    """Pearson correlation of each pair of (N, ...) maps; 0 where one is constant.

    Args:
        a (Tensor): (N, ...) maps.
        b (Tensor): (N, ...) maps, the shape of ``a``.
        valid (Tensor, optional): Bool, the shape of ``a``: correlate only
            these elements (e.g. leave padding out). Defaults to all.

    Returns:
        Tensor: (N,) correlations in [-1, 1].
    """
    weights = 1.0 if valid is None else valid.flatten(1).to(a.dtype)
    a = (a.flatten(1) - masked_mean(a, valid)[:, None]) * weights
    b = (b.flatten(1) - masked_mean(b, valid)[:, None]) * weights
    denominator = (a.norm(dim=1) * b.norm(dim=1))
    return torch.where(denominator > 0, (a * b).sum(1) / denominator.clamp_min(1e-12),
                       torch.zeros_like(denominator))


def adcc(p_image: Tensor, p_explanation: Tensor, maps: Tensor,
         maps_of_explanation: Tensor, valid: Optional[Tensor] = None) -> Dict[str, Tensor]:
    """ADCC (Poppi et al. 2021) and its parts, per image.

    Args:
        p_image (Tensor): (N,) class probability of the image.
        p_explanation (Tensor): (N,) class probability of ``image * map``.
        maps (Tensor): (N, H, W) maps in [0, 1] at input size.
        maps_of_explanation (Tensor): (N, H, W) the same method's maps for
            ``image * map``.
        valid (Tensor, optional): (N, H, W) bool, the pixels of each image:
            coherency and complexity read only these (not padding).
            Defaults to every pixel.

    Returns:
        dict: ``avg_drop``, ``coherency``, ``complexity`` and ``adcc`` (N,).
    """
    avg_drop = (p_image - p_explanation).clamp_min(0) / p_image.clamp_min(1e-12)
    coherency = (pearson(maps, maps_of_explanation, valid) + 1) / 2
    complexity = masked_mean(maps, valid)
    parts = torch.stack([coherency, 1 - complexity, 1 - avg_drop])
    harmonic = 3 / (1 / parts.clamp_min(1e-12)).sum(0)
    return dict(avg_drop=avg_drop, coherency=coherency, complexity=complexity,
                adcc=torch.where((parts > 0).all(0), harmonic, torch.zeros_like(harmonic)))


def random_maps(shape: Tuple[int, int, int], seed: int = 0, cells: int = 8) -> Tensor:
    """Random baseline: smooth random maps (upsampled noise), (N, H, W) in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(shape[0], 1, cells, cells, generator=generator)
    maps = torch.nn.functional.interpolate(noise, size=shape[1:], mode='bilinear',
                                           align_corners=False)[:, 0]
    low = maps.flatten(1).amin(1).view(-1, 1, 1)
    high = maps.flatten(1).amax(1).view(-1, 1, 1)
    return (maps - low) / (high - low)


def centre_blob_maps(shape: Tuple[int, int, int], sigma: float = 0.25) -> Tensor:
    """Centre-bias baseline: a Gaussian at the image centre, (N, H, W) in [0, 1].

    Args:
        shape (tuple): (N, H, W).
        sigma (float): Standard deviation as a fraction of each side.
    """
    _, height, width = shape
    ys = (torch.arange(height) + 0.5) / height - 0.5
    xs = (torch.arange(width) + 0.5) / width - 0.5
    blob = torch.exp(-(ys[:, None] ** 2 + xs[None] ** 2) / (2 * sigma ** 2))
    return (blob / blob.max()).expand(shape).clone()
