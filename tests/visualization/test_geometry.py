"""A map pixel must land on the original image pixel it explains."""
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

from mmxai.visualization import normalize_per_map, to_original_image

DOT = (150, 200)  # (y, x) in a 310 x 400 original image


def _image_with_dot():
    image = np.zeros((310, 400, 3), np.uint8)
    y, x = DOT
    image[y - 3:y + 4, x - 3:x + 4] = 255
    return image


def _run_pipeline(scope, steps):
    init_default_scope(scope)
    from mmengine.registry import TRANSFORMS
    image = _image_with_dot()
    results = dict(img=image, img_shape=image.shape[:2], ori_shape=image.shape[:2],
                   img_path='x.png')
    for step in steps:
        results = TRANSFORMS.build(step)(results)
    return results


def _map_seen_by_network(results, pad_to=1):
    seen = torch.from_numpy(results['img'][..., 0].astype(np.float32))
    height, width = seen.shape
    padded = torch.zeros(-(-height // pad_to) * pad_to, -(-width // pad_to) * pad_to)
    padded[:height, :width] = seen
    meta = {k: results[k] for k in ('ori_shape', 'img_shape', 'scale_factor', 'flip',
                                    'flip_direction') if k in results}
    meta['explain_input_shape'] = tuple(padded.shape)
    return padded[None], meta


def _argmax(maps):
    return np.unravel_index(int(maps[0].argmax()), maps.shape[1:])


def test_detection_resize_pad_and_flip_are_undone():
    results = _run_pipeline('mmdet', [dict(type='Resize', scale=(256, 256), keep_ratio=True),
                                      dict(type='RandomFlip', prob=1.0)])
    assert results['flip'] and results['img_shape'] == (198, 256)
    maps, meta = _map_seen_by_network(results, pad_to=32)
    assert meta['explain_input_shape'] == (224, 256)
    original = to_original_image(maps, meta)
    assert original.shape == (1, 310, 400)
    y, x = _argmax(original)
    assert abs(y - DOT[0]) <= 2 and abs(x - DOT[1]) <= 2


def test_classification_resize_and_centre_crop_are_undone():
    results = _run_pipeline('mmpretrain', [dict(type='ResizeEdge', scale=256, edge='short'),
                                           dict(type='CenterCrop', crop_size=224)])
    assert results['img_shape'] == (224, 224)
    maps, meta = _map_seen_by_network(results)
    original = to_original_image(maps, meta)
    assert original.shape == (1, 310, 400)
    y, x = _argmax(original)
    assert abs(y - DOT[0]) <= 2 and abs(x - DOT[1]) <= 2
    # The crop keeps x in about [68, 331) of the original: outside, the map is 0.
    assert original[0, :, :60].abs().max() == 0 and original[0, :, 340:].abs().max() == 0


def test_normalize_per_map():
    maps = torch.stack([torch.arange(6.).reshape(2, 3), torch.full((2, 3), 4.0)])
    out = normalize_per_map(maps)
    assert out[0].min() == 0 and out[0].max() == 1
    assert torch.equal(out[1], torch.zeros(2, 3))


@pytest.mark.parametrize('direction,dims', [('vertical', [-2]), ('diagonal', [-2, -1])])
def test_other_flip_directions(direction, dims):
    maps = torch.rand(1, 4, 6)
    meta = dict(explain_input_shape=(4, 6), img_shape=(4, 6), ori_shape=(4, 6),
                flip=True, flip_direction=direction)
    torch.testing.assert_close(to_original_image(maps, meta),
                               normalize_per_map(maps.flip(dims)))
