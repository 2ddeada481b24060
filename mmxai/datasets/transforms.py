"""Data transforms of mmxai."""
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform

from ..registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadImageFromArray(BaseTransform):
    """Take an in-memory image as a pipeline's loading step.

    Replaces ``LoadImageFromFile`` when images come as arrays (the Python API).

    Required Keys: ``img`` (H, W, 3) uint8 in BGR order, as OpenCV reads.

    Added Keys: ``img_shape``, ``ori_shape``, ``img_path`` (None unless given).
    """

    def transform(self, results: dict) -> Optional[dict]:
        image = results['img']
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3):
            shape = getattr(image, 'shape', type(image).__name__)
            raise ValueError(f'expected an (H, W, 3) BGR uint8 array, got {shape}')
        results['img'] = np.ascontiguousarray(image)
        results['img_shape'] = results['ori_shape'] = image.shape[:2]
        results.setdefault('img_path', None)
        return results
