"""Reading images that may be broken, with one clear reason when they are.

OpenCV decodes what it can and says little: depending on its version a
truncated JPEG is decoded with only a warning (the missing part grey), a text
file named ``.jpg`` gives ``None``. Here the bytes are checked first (known
signature, not empty, complete), then decoded exactly as MMCV's
``LoadImageFromFile`` decodes them (so EXIF orientation, 16-bit, CMYK, RGBA,
palette and grey images become the same 3-channel 8-bit BGR arrays the
model was tested with).
"""
import os
from typing import Optional

import mmcv
import numpy as np
from mmengine import fileio

from ..utils.errors import UnreadableImageError

#: Leading bytes of the formats OpenCV decodes, and of a few it does not.
_SIGNATURES = ((b'\xff\xd8\xff', 'JPEG'), (b'\x89PNG\r\n\x1a\n', 'PNG'), (b'BM', 'BMP'),
               (b'II*\x00', 'TIFF'), (b'MM\x00*', 'TIFF'), (b'GIF87a', 'GIF'),
               (b'GIF89a', 'GIF'), (b'8BPS', 'PSD'), (b'%PDF', 'PDF'))
_UNSUPPORTED = {'PSD', 'PDF', 'HEIF/AVIF'}


def image_format(data: bytes) -> Optional[str]:
    """The image format the bytes start with (``'JPEG'``, ``'PNG'``, ...) or None."""
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if data[:4] == b'RIFF' and data[8:12] == b'WEBP':
        return 'WEBP'
    if data[4:8] == b'ftyp' and data[8:12] in (b'heic', b'heix', b'mif1', b'avif', b'msf1'):
        return 'HEIF/AVIF'
    return None


def jpeg_is_complete(data: bytes) -> bool:
    """Whether a JPEG holds its header segments, a scan and the end marker.

    The header segments are walked by their lengths (so an EXIF thumbnail's
    own end marker is not mistaken for the image's); after the first scan,
    the entropy-coded data cannot contain ``FF D9`` (``FF`` is stuffed as
    ``FF 00``), so the first ``FF D9`` is the end of the image.
    """
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return True  # malformed header: leave the verdict to the decoder
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
        elif marker == 0xD9:
            return True
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:
            position += 2
        else:
            length = int.from_bytes(data[position + 2:position + 4], 'big')
            if marker == 0xDA:
                return data.find(b'\xff\xd9', position + 2 + length) != -1
            position += 2 + length
    return False


def check_image_bytes(data: bytes, path: str) -> str:
    """Return the format of an image file's bytes or say what is wrong with them.

    Args:
        data (bytes): The whole file.
        path (str): Its path, for the message.

    Returns:
        str: The format (``'JPEG'``, ``'PNG'``, ``'BMP'``, ...).

    Raises:
        UnreadableImageError: For an empty file, content that is no image,
            a format OpenCV cannot decode, or a truncated JPEG or PNG.
    """
    if not data:
        raise UnreadableImageError(f'{path}: empty file (0 bytes)')
    kind = image_format(data)
    if kind is None:
        raise UnreadableImageError(f'{path}: not an image (content starts with {data[:8]!r})')
    if kind in _UNSUPPORTED:
        raise UnreadableImageError(f'{path}: unsupported format {kind}')
    if kind == 'JPEG' and not jpeg_is_complete(data):
        raise UnreadableImageError(f'{path}: truncated JPEG (no end-of-image marker after '
                                   f'{len(data)} bytes)')
    if kind == 'PNG' and data.rfind(b'IEND') == -1:
        raise UnreadableImageError(f'{path}: truncated PNG (no IEND chunk after '
                                   f'{len(data)} bytes)')
    return kind


def decode_image(data: bytes, path: str, flag: str = 'color', channel_order: str = 'bgr',
                 backend: str = 'cv2') -> np.ndarray:
    """Check and decode an image file's bytes as MMCV's ``imfrombytes`` does.

    Args:
        data (bytes): The whole file.
        path (str): Its path, for messages.
        flag (str): MMCV colour flag (``'color'``, ``'grayscale'``, ...).
        channel_order (str): ``'bgr'`` or ``'rgb'``.
        backend (str): MMCV image decoding backend.

    Returns:
        np.ndarray: The image.

    Raises:
        UnreadableImageError: If the file is broken (see :func:`check_image_bytes`)
            or the decoder fails.
    """
    kind = check_image_bytes(data, path)
    try:
        image = mmcv.imfrombytes(data, flag=flag, channel_order=channel_order, backend=backend)
    except Exception as error:  # decoders raise many types for bad data
        raise UnreadableImageError(f'{path}: {kind} cannot be decoded ({error})') from error
    if image is None or image.size == 0:
        raise UnreadableImageError(f'{path}: {kind} cannot be decoded')
    return image


def read_image(path: str, flag: str = 'color', channel_order: str = 'bgr',
               backend: str = 'cv2', backend_args: Optional[dict] = None) -> np.ndarray:
    """Read, check and decode one image file.

    Args:
        path (str): Local path or any URI MMEngine's file backends read.
        flag (str): MMCV colour flag.
        channel_order (str): ``'bgr'`` or ``'rgb'``.
        backend (str): MMCV image decoding backend.
        backend_args (dict, optional): MMEngine file backend arguments.

    Returns:
        np.ndarray: The decoded image.

    Raises:
        UnreadableImageError: With the path and the reason (including
            operating-system errors such as a symlink loop or no permission).
    """
    try:
        data = fileio.get(path, backend_args=backend_args)
    except OSError as error:
        reason = error.strerror or str(error)
        raise UnreadableImageError(f'{path}: cannot be read ({reason})') from error
    return decode_image(data, path, flag, channel_order, backend)


def describe_failure(error: BaseException, path: str) -> str:
    """One line for why ``path`` failed, without the path: the reason, typed when unexpected."""
    text = str(error).strip().splitlines()
    message = text[0] if text else ''
    if isinstance(error, UnreadableImageError):
        return message[len(path) + 2:] if message.startswith(f'{path}: ') else message
    return f'{type(error).__name__}: {message}'.rstrip(': ')


def stat_signature(path: str) -> dict:
    """Absolute path, size and modification time: whether a file is the one explained before."""
    info = os.stat(path)
    return dict(path=os.path.abspath(path), size=info.st_size, mtime_ns=info.st_mtime_ns)
