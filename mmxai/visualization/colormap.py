"""JET colour maps and overlays as torch operations (BGR, like OpenCV)."""
from functools import lru_cache

import cv2
import numpy as np
import torch
from torch import Tensor


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
    return lut[to_uint8(maps01).long()]


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
    blend = image_bgr.float()[None] * (1 - weight) + colored_bgr.float() * weight
    return blend.round().clamp(0, 255).to(torch.uint8)
