"""How to read class probabilities from each supported dense detection head.

Every head in :data:`SUPPORTED_HEADS` returns from ``forward()`` a tuple whose
first item is the per-level classification output (B, A*C, h, w) with A
anchors per position and C = ``head.cls_out_channels`` channels per anchor,
laid out anchor-major (channel ``a * C + c``), which is how MMDetection's
``predict_by_feat`` reads them. What differs per head is how those channels
become probabilities:

* sigmoid heads (``use_sigmoid_cls``): ``sigmoid`` per channel, C = K;
* softmax heads (SSD): ``softmax`` over the C = K + 1 channels of each
  anchor, the background channel (the last one) is dropped;
* YOLOX multiplies by its separate objectness output, as its box scores do.
"""
from typing import Any, Dict, List, Optional

import torch.nn.functional as F
from torch import Tensor, nn

from ..utils.errors import UnsupportedModelError

#: Head class name -> index of its objectness output in ``forward()``'s
#: tuple, or None when it has none.
SUPPORTED_HEADS: Dict[str, Optional[int]] = {
    'ATSSHead': None,
    'RetinaHead': None,
    'RetinaSepBNHead': None,
    'FCOSHead': None,
    'GFLHead': None,
    'FSAFHead': None,
    'PAAHead': None,
    'RTMDetHead': None,
    'RTMDetSepBNHead': None,
    'SSDHead': None,
    'YOLOXHead': 2,
}


def check_head_supported(head: Optional[nn.Module], detector_name: str,
                         method: str = 'classwisesaliencymap') -> None:
    """Raise :class:`UnsupportedModelError` for heads not in the table."""
    name = type(head).__name__ if head is not None else 'no dense bbox_head'
    if name not in SUPPORTED_HEADS:
        raise UnsupportedModelError(
            f'{method} does not support {detector_name} ({name}); it supports '
            f'single-stage detectors with heads: {", ".join(sorted(SUPPORTED_HEADS))}. '
            'drise, activationmap and eigencam work for any detector.')


def class_probability_levels(head: nn.Module, head_outputs: Any) -> List[Tensor]:
    """Per-level class probabilities (B, K, h, w): the max over anchors.

    Args:
        head (nn.Module): The detector's ``bbox_head``.
        head_outputs: What ``head.forward()`` returned in this forward pass.

    Returns:
        list[Tensor]: One (B, K, h_l, w_l) tensor per level.
    """
    objectness_index = SUPPORTED_HEADS[type(head).__name__]
    channels = head.cls_out_channels
    levels = []
    for level, cls_score in enumerate(head_outputs[0]):
        batch, _, height, width = cls_score.shape
        logits = cls_score.reshape(batch, -1, channels, height, width)
        if head.use_sigmoid_cls:
            probs = logits.sigmoid()
        else:
            probs = F.softmax(logits, dim=2)[:, :, :head.num_classes]
        if objectness_index is not None:
            probs = probs * head_outputs[objectness_index][level].sigmoid().unsqueeze(1)
        levels.append(probs.amax(dim=1))
    return levels
