"""Reading broken and unusual image files: a clear reason, or the image MMCV reads."""
import io

import cv2
import mmcv
import numpy as np
import pytest
from PIL import Image

from mmxai.datasets import LoadImageChecked, UnreadableImageError, check_image_bytes, read_image
from mmxai.datasets.image_io import jpeg_is_complete

RNG = np.random.default_rng(0)
# 16 px blocks of random colours: distinct in every direction, and JPEG keeps them.
RGB = np.kron((RNG.random((3, 4, 3)) * 255).astype(np.uint8), np.ones((16, 16, 1), np.uint8))


def _jpeg(image=RGB, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format='JPEG', quality=95, **kwargs)
    return buffer.getvalue()


def _png(image) -> bytes:
    ok, buffer = cv2.imencode('.png', image)
    assert ok
    return buffer.tobytes()


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_unusual_but_valid_images_become_the_bgr_image_mmcv_reads(tmp_path):
    bgr = RGB[..., ::-1]
    pil = Image.fromarray(RGB)
    files = {
        'gray.png': _png(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)),
        'rgba.png': _png(cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)),
        'deep16.png': _png(bgr.astype(np.uint16) * 257),
        'plain.jpg': _jpeg(),
        'progressive.jpg': _jpeg(progressive=True),
    }
    for mode in ('P', 'CMYK'):
        buffer = io.BytesIO()
        pil.convert(mode).save(buffer, format='PNG' if mode == 'P' else 'JPEG', quality=95)
        files[f'{mode}.{"png" if mode == "P" else "jpg"}'] = buffer.getvalue()
    for name, data in files.items():
        image = read_image(_write(tmp_path, name, data))
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8, name
        np.testing.assert_array_equal(image, mmcv.imfrombytes(data), err_msg=name)
    # The 16-bit PNG keeps its high byte; the CMYK JPEG its colours (lossy).
    np.testing.assert_array_equal(read_image(str(tmp_path / 'deep16.png')), bgr)
    assert np.abs(read_image(str(tmp_path / 'CMYK.jpg')).astype(int) - bgr).mean() < 12


def test_exif_orientation_is_applied_as_the_model_sees_it(tmp_path):
    image = Image.fromarray(RGB)
    exif = image.getexif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, format='JPEG', quality=95, exif=exif)
    path = _write(tmp_path, 'rotated.jpg', buffer.getvalue())
    loaded = LoadImageChecked()(dict(img_path=path))
    assert loaded['img'].shape == (64, 48, 3) and loaded['ori_shape'] == (64, 48)
    upright = np.rot90(RGB[..., ::-1], k=-1)
    assert np.abs(loaded['img'].astype(int) - upright).mean() < 12


@pytest.mark.parametrize('keep', [0.5, 0.9, -2])
def test_truncated_jpeg_is_refused_wherever_it_is_cut(tmp_path, keep):
    for name, data in (('plain.jpg', _jpeg()), ('progressive.jpg', _jpeg(progressive=True))):
        cut = data[:int(len(data) * keep)] if keep > 0 else data[:keep]
        path = _write(tmp_path, name, cut)
        with pytest.raises(UnreadableImageError, match='truncated JPEG') as error:
            read_image(path)
        assert path in str(error.value)


def test_a_thumbnail_end_marker_does_not_hide_truncation():
    data = _jpeg()
    thumbnail = b'Exif\x00\x00' + b'\xff\xd8\xff\xd9'  # an embedded JPEG ending in FF D9
    app1 = b'\xff\xe1' + (len(thumbnail) + 2).to_bytes(2, 'big') + thumbnail
    with_thumbnail = data[:2] + app1 + data[2:]
    assert jpeg_is_complete(with_thumbnail)
    assert mmcv.imfrombytes(with_thumbnail) is not None
    assert not jpeg_is_complete(with_thumbnail[:len(with_thumbnail) // 2])
    assert b'\xff\xd9' in with_thumbnail[:len(with_thumbnail) // 2]  # the trap is there
    # Bytes after the end marker (camera trailers) are no truncation.
    assert jpeg_is_complete(data + b'trailer')


@pytest.mark.parametrize('data, reason', [
    (b'', 'empty file'),
    (b'hello, I am text', 'not an image'),
    (b'8BPS' + b'\x00' * 40, 'unsupported format PSD'),
    (b'\x00\x00\x00\x18ftypheic' + b'\x00' * 40, 'unsupported format HEIF'),
    (b'\x89PNG\r\n\x1a\n' + b'\x00' * 40, 'truncated PNG'),
    (b'\xff\xd8\xff\xe0\x00\x10JFIF' + b'\x00' * 60 + b'\xff\xd9', 'cannot be decoded'),
])
def test_broken_files_name_the_problem(tmp_path, data, reason):
    path = _write(tmp_path, 'x.jpg', data)
    with pytest.raises(UnreadableImageError, match=reason) as error:
        read_image(path)
    assert str(error.value).startswith(path + ': ')
    assert '\n' not in str(error.value)


def test_operating_system_errors_are_reasons_too(tmp_path):
    loop = tmp_path / 'loop.jpg'
    loop.symlink_to(loop)
    with pytest.raises(UnreadableImageError, match='symbolic links'):
        read_image(str(loop))
    with pytest.raises(UnreadableImageError, match='cannot be read'):
        read_image(str(tmp_path / 'missing.jpg'))


def test_format_is_detected_from_content_not_name():
    assert check_image_bytes(_png(RGB), 'looks.jpg') == 'PNG'
    assert check_image_bytes(_jpeg(), 'looks.png') == 'JPEG'
