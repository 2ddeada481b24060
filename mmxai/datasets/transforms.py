"""Data transforms of mmxai."""
from typing import Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform, LoadImageFromFile

from ..registry import TRANSFORMS
from .image_io import read_image


@TRANSFORMS.register_module()
class LoadImageFromArray(BaseTransform):
    """Take an in-memory image as a pipeline's loading step.

    Replaces ``LoadImageFromFile`` when images come as arrays (the Python API).

    Required Keys: ``img`` (H, W, 3) uint8 in BGR order, as OpenCV reads.

    Added Keys: ``img_shape``, ``ori_shape``, ``img_path`` (None unless given).

    Args:
        to_float32 (bool): Convert the image to float32, as the replaced
            ``LoadImageFromFile(to_float32=True)`` does (CenterNet's pipeline
            needs it).
        color_type (str): ``'color'`` (the array as given) or
            ``'grayscale'`` ((H, W), as the replaced loader reads for
            one-channel models).
    """

    def __init__(self, to_float32: bool = False, color_type: str = 'color') -> None:
        if color_type not in ('color', 'grayscale'):
            raise ValueError(f"color_type must be 'color' or 'grayscale', got {color_type!r}")
        self.to_float32 = to_float32
        self.color_type = color_type

    def transform(self, results: dict) -> Optional[dict]:
        image = results['img']
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3):
            shape = getattr(image, 'shape', type(image).__name__)
            raise ValueError(f'expected an (H, W, 3) BGR uint8 array, got {shape}')
        image = np.ascontiguousarray(image)
        if self.color_type == 'grayscale':
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        results['img'] = image.astype(np.float32) if self.to_float32 else image
        results['img_shape'] = results['ori_shape'] = image.shape[:2]
        results.setdefault('img_path', None)
        return results


@TRANSFORMS.register_module()
class LoadImageChecked(LoadImageFromFile):
    """MMCV's ``LoadImageFromFile`` that refuses broken files with a clear reason.

    Takes the same arguments and gives the same image for a good file. An
    empty, truncated (JPEG, PNG), undecodable or non-image file raises
    :class:`~mmxai.datasets.image_io.UnreadableImageError` naming the file,
    where MMCV would fail later with an unrelated message or, for a
    truncated JPEG, explain a half-grey image without a word.

    Required Keys: ``img_path``. Added Keys: ``img``, ``img_shape``, ``ori_shape``.
    """

    def transform(self, results: dict) -> Optional[dict]:
        image = read_image(results['img_path'], flag=self.color_type,
                           backend=self.imdecode_backend, backend_args=self.backend_args)
        if self.to_float32:
            image = image.astype(np.float32)
        results['img'] = image
        results['img_shape'] = results['ori_shape'] = image.shape[:2]
        return results
