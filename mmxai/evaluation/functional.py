"""Saliency quality metrics as batched torch functions.

Every map is read in one value space: float (H, W) maps in [0, 1] at the
original image resolution, as ``--save-raw`` writes them.
"""
from typing import Callable, Dict, Sequence, Tuple

import torch
from torch import Tensor


def pointing_game_hits(maps: Tensor, boxes: Sequence[Tensor], tolerance: float = 0.0) -> Tensor:
    """Whether each map's maximum lies in (or within ``tolerance`` px of) a box.

    Args:
        maps (Tensor): (N, H, W) saliency maps.
        boxes (Sequence[Tensor]): Per map, (n_i, 4) boxes (x1, y1, x2, y2) in
            pixels, x2/y2 exclusive; a map with no box never hits.
        tolerance (float): Distance in pixels from the maximum to the box that
            still counts as a hit (TorchRay's pointing game uses 15).

    Returns:
        Tensor: (N,) bool.
    """
    width = maps.shape[-1]
    flat = maps.flatten(1).argmax(dim=1)
    ys, xs = (flat // width).float() + 0.5, (flat % width).float() + 0.5  # pixel centres
    hits = []
    for x, y, map_boxes in zip(xs, ys, boxes):
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
                       steps: int = 16) -> Dict[str, Tensor]:
    """Insertion and deletion curves and their areas (Petsiuk et al. 2018).

    Pixels are ordered by saliency (ties by position). Deletion replaces the
    top fraction of pixels of the image with the deletion canvas (RISE: black),
    insertion puts them onto the insertion canvas (RISE: a blurred copy); the
    class score is recorded after each of ``steps`` equal steps. All images
    are scored in one call per step and curve.

    Args:
        score (Callable): (N, C, H, W) images -> (N,) class scores in [0, 1].
        images (Tensor): (N, C, H, W) images.
        maps (Tensor): (N, H, W) saliency maps.
        insertion_canvas (Tensor): (N, C, H, W) the start of insertion.
        deletion_canvas (Tensor): (N, C, H, W) what deleted pixels become.
        steps (int): Number of steps from 0 to all pixels.

    Returns:
        dict: ``insertion`` and ``deletion`` curves (N, steps + 1) and their
        areas ``insertion_auc`` and ``deletion_auc`` (N,) in [0, 1] for
        scores in [0, 1]. Higher insertion and lower deletion are better.
    """
    batch, _, height, width = images.shape
    order = maps.flatten(1).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(height * width, device=maps.device).expand(batch, -1))
    rank = rank.view(batch, 1, height, width)
    insertion, deletion = [], []
    for step in range(steps + 1):
        shown = rank < round(step / steps * height * width)  # top pixels so far
        insertion.append(score(torch.where(shown, images, insertion_canvas)))
        deletion.append(score(torch.where(shown, deletion_canvas, images)))
    curves = dict(insertion=torch.stack(insertion, 1), deletion=torch.stack(deletion, 1))
    curves.update(insertion_auc=_area(curves['insertion']), deletion_auc=_area(curves['deletion']))
    return curves


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of each pair of (N, ...) maps; 0 where one is constant."""
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    denominator = (a.norm(dim=1) * b.norm(dim=1))
    return torch.where(denominator > 0, (a * b).sum(1) / denominator.clamp_min(1e-12),
                       torch.zeros_like(denominator))


def adcc(p_image: Tensor, p_explanation: Tensor, maps: Tensor,
         maps_of_explanation: Tensor) -> Dict[str, Tensor]:
    """ADCC (Poppi et al. 2021) and its parts, per image.

    Args:
        p_image (Tensor): (N,) class probability of the image.
        p_explanation (Tensor): (N,) class probability of ``image * map``.
        maps (Tensor): (N, H, W) maps in [0, 1] at input size.
        maps_of_explanation (Tensor): (N, H, W) the same method's maps for
            ``image * map``.

    Returns:
        dict: ``avg_drop``, ``coherency``, ``complexity`` and ``adcc`` (N,).
    """
    avg_drop = (p_image - p_explanation).clamp_min(0) / p_image.clamp_min(1e-12)
    coherency = (pearson(maps, maps_of_explanation) + 1) / 2
    complexity = maps.flatten(1).mean(1)
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
