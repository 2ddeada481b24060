"""A map pixel must land on the original image pixel it explains."""
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope

from mmxai.geometry import (
    PIXELS,
    CellGrid,
    boxes_to_input,
    cell_span,
    cell_span_on_original_image,
    merge_levels,
    normalize_per_map,
    resample_cells,
    to_original_image,
)
from tests.helpers import load_config

DOT = (150, 200)  # (y, x) in a 310 x 400 original image


def _image_with_dot():
    image = np.zeros((310, 400, 3), np.uint8)
    y, x = DOT
    image[y - 3:y + 4, x - 3:x + 4] = 255
    return image


def _run_pipeline(scope, steps, dtype=np.uint8):
    init_default_scope(scope)
    from mmengine.registry import TRANSFORMS
    image = _image_with_dot().astype(dtype)
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
                                    'flip_direction', 'border') if k in results}
    return padded[None], meta, tuple(padded.shape)


def _argmax(maps):
    return np.unravel_index(int(maps[0].argmax()), maps.shape[1:])


def test_detection_resize_pad_and_flip_are_undone():
    results = _run_pipeline('mmdet', [dict(type='Resize', scale=(256, 256), keep_ratio=True),
                                      dict(type='RandomFlip', prob=1.0)])
    assert results['flip'] and results['img_shape'] == (198, 256)
    maps, meta, input_shape = _map_seen_by_network(results, pad_to=32)
    assert input_shape == (224, 256)
    original = to_original_image(maps, meta, input_shape, PIXELS)
    assert original.shape == (1, 310, 400)
    y, x = _argmax(original)
    assert abs(y - DOT[0]) <= 2 and abs(x - DOT[1]) <= 2


def test_classification_resize_and_centre_crop_are_undone():
    results = _run_pipeline('mmpretrain', [dict(type='ResizeEdge', scale=256, edge='short'),
                                           dict(type='CenterCrop', crop_size=224)])
    assert results['img_shape'] == (224, 224)
    maps, meta, input_shape = _map_seen_by_network(results)
    original = to_original_image(maps, meta, input_shape, PIXELS)
    assert original.shape == (1, 310, 400)
    y, x = _argmax(original)
    assert abs(y - DOT[0]) <= 2 and abs(x - DOT[1]) <= 2
    # The crop keeps x in about [68, 331) of the original: outside, the map is 0.
    assert original[0, :, :60].abs().max() == 0 and original[0, :, 340:].abs().max() == 0


@pytest.mark.parametrize('config', ['mmdet::centernet/centernet_r18_8xb16-crop512-140e_coco.py',
                                    'mmdet::cornernet/cornernet_hourglass104_8xb6-210e-mstest_coco.py'])
def test_centre_padding_of_centernet_and_cornernet_is_undone(config):
    # Their test pipelines (RandomCenterCropPad, test mode) centre the image on a
    # larger canvas and record where in `border`; maps and boxes must follow.
    steps = [s for s in load_config(config).test_dataloader.dataset.pipeline
             if s['type'] == 'RandomCenterCropPad']
    results = _run_pipeline('mmdet', steps, np.float32)
    assert results['img_shape'] != results['ori_shape'] and results['border'][0] > 0
    maps, meta, input_shape = _map_seen_by_network(results, pad_to=32)
    original = to_original_image(maps, meta, input_shape, PIXELS)
    assert original.shape == (1, 310, 400)
    y, x = DOT  # the 7 x 7 dot, exactly: nothing is resized
    assert original[0, y - 3:y + 4, x - 3:x + 4].min() == 1 and original.sum() == 49
    box = torch.tensor([[DOT[1] - 3, DOT[0] - 3, DOT[1] + 4, DOT[0] + 4]], dtype=torch.float32)
    x1, y1, x2, y2 = boxes_to_input(box, meta)[0].round().long().tolist()
    seen = torch.from_numpy(results['img'][..., 0])
    assert seen[y1:y2, x1:x2].min() == 255 and (seen == 255).sum() == 49  # the whole dot


def test_no_maps_at_all_stay_empty_at_the_original_size():
    meta = dict(img_shape=(64, 64), ori_shape=(310, 400), scale_factor=(0.16, 0.2))
    empty = to_original_image(torch.zeros(0, 8, 8), meta, (64, 64), CellGrid(8, 8, 0.5, 0.5))
    assert empty.shape == (0, 310, 400)


def test_normalize_per_map():
    maps = torch.stack([torch.arange(6.).reshape(2, 3), torch.full((2, 3), 4.0)])
    out = normalize_per_map(maps)
    assert out[0].min() == 0 and out[0].max() == 1
    assert torch.equal(out[1], torch.zeros(2, 3))


@pytest.mark.parametrize('direction,dims', [('vertical', [-2]), ('diagonal', [-2, -1])])
def test_other_flip_directions(direction, dims):
    maps = torch.rand(1, 4, 6)
    meta = dict(img_shape=(4, 6), ori_shape=(4, 6), flip=True, flip_direction=direction)
    torch.testing.assert_close(to_original_image(maps, meta, (4, 6), PIXELS),
                               normalize_per_map(maps.flip(dims)))


def test_start_anchored_cells_sit_at_multiples_of_the_stride():
    maps = torch.zeros(1, 1, 8, 8)
    maps[0, 0, 3, 5] = 1
    out = resample_cells(maps, (256, 256), CellGrid.of_ratio((256, 256), (8, 8), 'start'))
    assert _argmax(out[0]) == (96, 160)  # 3 * 32, 5 * 32
    # Centre-anchored cells (ViT patches) sit in the middle of their block.
    out = resample_cells(maps, (256, 256), CellGrid.of_ratio((256, 256), (8, 8), 'center'))
    y, x = _argmax(out[0])
    assert 96 + 15 <= y <= 96 + 16 and 160 + 15 <= x <= 160 + 16


def test_center_anchor_is_interpolate_without_corner_alignment():
    maps = torch.rand(2, 3, 5, 7)
    torch.testing.assert_close(
        resample_cells(maps, (40, 21), CellGrid.of_ratio((40, 21), (5, 7), 'center')),
        F.interpolate(maps, size=(40, 21), mode='bilinear', align_corners=False))


def test_feature_map_cell_lands_on_its_image_pixel():
    """A 1/32 map of a stride-32 CNN, through resize and pad, onto the original."""
    results = _run_pipeline('mmdet', [dict(type='Resize', scale=(256, 256), keep_ratio=True)])
    meta = {k: results[k] for k in ('ori_shape', 'img_shape', 'scale_factor')}
    maps = torch.zeros(1, 7, 8)
    dot_y, dot_x = (round(v * 0.64) for v in DOT)  # where the dot is in the network input
    maps[0, dot_y // 32, dot_x // 32] = 1
    grid = CellGrid.of_ratio((224, 256), (7, 8), 'start')
    y, x = _argmax(to_original_image(maps, meta, (224, 256), grid))
    assert abs(y - (dot_y // 32) * 32 / 0.64) <= 2 and abs(x - (dot_x // 32) * 32 / 0.64) <= 2


def test_a_cell_lands_where_its_grid_says():
    # Cell (2, 3) of a grid with stride (16, 8) and origin (8, 0) belongs at input
    # (y, x) = (40, 24): the pixels whose centres (p + 0.5) are nearest are 39/40, 23/24.
    maps = torch.zeros(1, 1, 6, 10)
    maps[0, 0, 2, 3] = 1
    out = resample_cells(maps, (96, 80), CellGrid(16, 8, 8, 0))[0, 0]
    assert out[39, 23] == out[40, 24] == out[39, 24] == out[40, 23] == out.max()
    ys, xs = torch.arange(96.) + 0.5, torch.arange(80.) + 0.5
    assert float((out.sum(1) * ys).sum() / out.sum()) == pytest.approx(40.0)
    assert float((out.sum(0) * xs).sum() / out.sum()) == pytest.approx(24.0)


def test_merge_levels_reads_each_level_where_its_grid_puts_it():
    # FCOS-like points at (k + 0.5) * stride: cell 1 of the stride-16 level sits at 24,
    # halfway between cells 2 (at 20) and 3 (at 28) of the stride-8 level.
    fine, coarse = torch.zeros(1, 1, 1, 8), torch.zeros(1, 1, 1, 4)
    coarse[..., 1] = 1
    merged, grid = merge_levels([fine, coarse], [CellGrid(8, 8, 4, 4), CellGrid(16, 16, 8, 8)])
    assert grid == CellGrid(8, 8, 4, 4)
    # The stride-8 cells at 12, 20, 28, 36 lie 0.75, 0.25, 0.25, 0.75 coarse strides away
    # (bilinear weight: 1 - distance); the fine level adds zeros to the mean.
    expected = torch.tensor([0, 0.25, 0.75, 0.75, 0.25, 0, 0, 0]) / 2
    torch.testing.assert_close(merged[0, 0, 0], expected)


def test_max_over_levels_keeps_every_levels_peak():
    # The same coarse cell at 24 has no stride-8 cell at its centre: bilinear reading
    # would give 0.75 at most. The max merge gives its value to the cells nearest to it.
    fine, coarse = torch.zeros(1, 1, 1, 8), torch.zeros(1, 1, 1, 4)
    coarse[..., 1] = 0.6
    fine[..., 6] = 0.2
    merged, _ = merge_levels([fine, coarse], [CellGrid(8, 8, 4, 4), CellGrid(16, 16, 8, 8)],
                             reduce='max')
    # Cells at 20 and 28 are nearest to 24 (the tie at 28 goes to either neighbour).
    assert merged.max() == 0.6 and merged[0, 0, 0, 2] == 0.6 and merged[0, 0, 0, 6] == 0.2
    assert merged[0, 0, 0, 0] == 0


def test_absolute_and_raw_values_keep_the_method_scale():
    maps = torch.tensor([[[0.1, 0.2], [0.3, 0.4]], [[0.02, 0.02], [0.02, 0.02]]])
    meta = dict(img_shape=(2, 2), ori_shape=(2, 2))
    on_image = partial(to_original_image, maps, meta, (2, 2), PIXELS)
    torch.testing.assert_close(on_image('absolute', (0.0, 1.0)), maps)
    torch.testing.assert_close(on_image('none', (0.0, 1.0)), maps)
    per_map = on_image()
    assert per_map[0].max() == 1 and per_map[1].max() == 0  # stretched; constant -> 0
    with pytest.raises(ValueError, match='no absolute scale'):
        on_image('absolute')


def test_cell_span_holds_the_pixels_between_the_outer_cell_centres():
    # A ResNet's grid: cell k on input pixel 32 k (centre 32 k + 0.5).
    span = cell_span((8, 6), CellGrid(32.0, 32.0, 0.5, 0.5), (256, 224))
    rows, columns = span.any(1).nonzero()[:, 0], span.any(0).nonzero()[:, 0]
    assert (rows.min(), rows.max(), len(rows)) == (0, 224, 225)  # pixel 224: cell 7's
    assert (columns.min(), columns.max(), len(columns)) == (0, 160, 161)
    assert span.sum() == 225 * 161  # a rectangle
    # Cells centred in their 32-px blocks (ConvNeXt): centres 16, 48, ..., 240.
    span = cell_span((8, 8), CellGrid(32.0, 32.0, 16.0, 16.0), (256, 256))
    rows = span.any(1).nonzero()[:, 0]
    # 16 is the border of pixels 15 and 16: both touch it (and both of 239 and 240 touch 240).
    assert (rows.min(), rows.max()) == (15, 240)
    # One cell on a pixel corner: the four pixels around it.
    assert cell_span((1, 1), CellGrid(32.0, 32.0, 16.0, 16.0), (32, 32)).nonzero().tolist() \
        == [[15, 15], [15, 16], [16, 15], [16, 16]]


def test_cell_span_on_the_original_image_is_flipped_and_resized_as_maps_are():
    """Corner cells land where the pipeline's flip (x' = W - x) and 2x resize put them."""
    meta = dict(ori_shape=(480, 512), img_shape=(240, 256), scale_factor=(0.5, 0.5), flip=True,
                flip_direction='horizontal')
    region = cell_span_on_original_image((8, 8), CellGrid(32.0, 32.0, 0.5, 0.5), meta,
                                         (256, 256))
    assert region.shape == (480, 512)
    # Cell (0, 0) sits at input (0.5, 0.5), cell (7, 7) at (224.5, 224.5). Flipped in the
    # 256-wide image: x = 255.5 and 31.5; then doubled. Rows: 1 and 449.
    rows, columns = region.any(1).nonzero()[:, 0], region.any(0).nonzero()[:, 0]
    assert rows.min() == 0 and abs(rows.max() - 449) <= 2
    assert abs(columns.min() - 63) <= 2 and columns.max() == 511
    assert region.sum() == len(rows) * len(columns)
