"""JET colour maps and overlays as torch operations (BGR, like OpenCV)."""
from functools import lru_cache

import cv2
import numpy as np
import torch
from torch import Tensor

#: Pixels per band of rows: bounds the temporaries of huge images to ~100 MB.
BAND_PIXELS = 1 << 22


def _bands(height: int, width: int):
    rows = max(1, BAND_PIXELS // max(width, 1))
    return (slice(top, top + rows) for top in range(0, height, rows))


@lru_cache(maxsize=None)
def _jet_lut_bgr() -> np.ndarray:
    return cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0]


def to_uint8(maps01: Tensor) -> Tensor:
    """Maps in [0, 1] to uint8 0..255 (rounded)."""
    return (maps01.clamp(0, 1) * 255).round().to(torch.uint8)


def colorize(maps01: Tensor) -> Tensor:
    """JET colour maps (red = high) of (T, H, W) maps in [0, 1].

    Returns:
        Tensor: (T, H, W, 3) uint8 in BGR order, on the maps' device.
    """
    lut = torch.from_numpy(_jet_lut_bgr()).to(maps01.device)
    colored = maps01.new_empty((*maps01.shape, 3), dtype=torch.uint8)
    for rows in _bands(*maps01.shape[-2:]):
        colored[:, rows] = lut[to_uint8(maps01[:, rows]).long()]
    return colored


def overlay(image_bgr: Tensor, colored_bgr: Tensor, weight: float = 0.5) -> Tensor:
    """Blend colour maps onto an image: ``image * (1 - weight) + map * weight``.

    Args:
        image_bgr (Tensor): (H, W, 3) uint8 BGR image.
        colored_bgr (Tensor): (T, H, W, 3) uint8 BGR colour maps.
        weight (float): Weight of the map, in [0, 1].

    Returns:
        Tensor: (T, H, W, 3) uint8 BGR overlays.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f'overlay weight must be in [0, 1], got {weight}')
    blended = torch.empty_like(colored_bgr)
    for rows in _bands(*colored_bgr.shape[1:3]):
        blend = image_bgr[None, rows].float() * (1 - weight) + colored_bgr[:, rows].float() * weight
        blended[:, rows] = blend.round().clamp(0, 255).to(torch.uint8)
    return blended
