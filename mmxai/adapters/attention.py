"""Token attention of a transformer decoder's cross-attention, as the model computed it."""
from typing import Tuple

import torch
from torch import Tensor


def sampling_locations(reference_points: Tensor, offsets: Tensor, spatial_shapes: Tensor,
                       num_points: int) -> Tensor:
    """Where multi-scale deformable attention samples, from its inputs and offsets.

    The rule of Deformable DETR (Zhu et al., 2021, eq. 3) as MMCV's
    ``MultiScaleDeformableAttention`` applies it: reference points (x, y)
    plus offsets in units of the level's cells, or reference boxes
    (x, y, w, h) plus offsets scaled by half the box over the number of points.

    Args:
        reference_points (Tensor): (B, Q, L, 2) or (B, Q, L, 4), in [0, 1].
        offsets (Tensor): (B, Q, heads, L, P, 2) sampling offsets.
        spatial_shapes (Tensor): (L, 2) ``(h, w)`` of each level.
        num_points (int): P.

    Returns:
        Tensor: (B, Q, heads, L, P, 2) normalised ``(x, y)`` locations.
    """
    if reference_points.shape[-1] == 2:
        normaliser = spatial_shapes.flip(-1).to(offsets)  # (w, h)
        return reference_points[:, :, None, :, None, :] + \
            offsets / normaliser[None, None, None, :, None, :]
    return reference_points[:, :, None, :, None, :2] + \
        offsets / num_points * reference_points[:, :, None, :, None, 2:] * 0.5


def splat_sampling_weights(locations: Tensor, weights: Tensor, spatial_shapes: Tensor,
                           average_heads: bool = True) -> Tensor:
    """The attention over image tokens that multi-scale deformable attention computes.

    Each sampling point reads its level bilinearly, as ``grid_sample`` with
    ``align_corners=False`` and zero padding does: the point's weight goes to
    the four neighbouring tokens with the bilinear weights, and corners
    outside the level are dropped. So the result ``A`` satisfies
    ``output = A @ value`` for MMCV's ``multi_scale_deformable_attn_pytorch``.

    Args:
        locations (Tensor): (B, Q, heads, L, P, 2) normalised ``(x, y)``.
        weights (Tensor): (B, Q, heads, L, P) attention weights (softmax over L * P).
        spatial_shapes (Tensor): (L, 2) ``(h, w)`` of each level; tokens are
            the levels in order, each row-major.
        average_heads (bool): Average over heads, giving (B, Q, N); else (B, Q, heads, N).

    Returns:
        Tensor: Attention per token, N = sum of h * w.
    """
    batch, queries, heads, levels, points, _ = locations.shape
    shapes = [tuple(int(v) for v in shape) for shape in spatial_shapes.tolist()]
    starts = torch.tensor([0] + [h * w for h, w in shapes][:-1],
                          device=locations.device).cumsum(0)
    sizes = torch.tensor(shapes, device=locations.device, dtype=locations.dtype)  # (L, 2) h, w
    num_tokens = sum(h * w for h, w in shapes)
    height = sizes[:, 0].view(1, 1, 1, levels, 1)
    width = sizes[:, 1].view(1, 1, 1, levels, 1)
    x = locations[..., 0] * width - 0.5  # pixel coordinates of align_corners=False
    y = locations[..., 1] * height - 0.5
    x0, y0 = x.floor(), y.floor()
    fx, fy = x - x0, y - y0
    out = weights.new_zeros(batch, queries, heads, num_tokens)
    for dx, dy, corner in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                           (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        cx, cy = x0 + dx, y0 + dy
        inside = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
        index = starts.view(1, 1, 1, levels, 1) + \
            (cy.clamp(min=0) * width + cx.clamp(min=0)).long()
        index = torch.where(inside, index, torch.zeros_like(index))
        out.scatter_add_(3, index.flatten(3), (weights * corner * inside).flatten(3))
    return out.mean(2) if average_heads else out


def level_slices(spatial_shapes: Tensor) -> Tuple[Tuple[int, int, int], ...]:
    """``(start, h, w)`` of each level's tokens in the flattened sequence."""
    slices, start = [], 0
    for h, w in spatial_shapes.tolist():
        slices.append((start, int(h), int(w)))
        start += int(h) * int(w)
    return tuple(slices)
