"""Metrics on hand-made cases with known answers."""
import numpy as np
import pytest
import torch

from mmxai.evaluation import (
    adcc,
    centre_blob_maps,
    insertion_deletion,
    peak_points,
    pointing_game_hits,
    random_maps,
)
from mmxai.geometry import CellGrid, cell_span_on_original_image, to_original_image


def _peak(y, x, size=20):
    maps = torch.zeros(size, size)
    maps[y, x] = 1
    return maps


def test_pointing_game_inside_outside_and_tolerance():
    maps = torch.stack([_peak(5, 5), _peak(5, 15), _peak(5, 12)])
    box = torch.tensor([[2.0, 2.0, 10.0, 10.0]])
    hits = pointing_game_hits(maps, [box, box, box])
    assert hits.tolist() == [True, False, False]
    # (12.5, 5.5) is 2.5 px right of the box edge at x = 10.
    assert pointing_game_hits(maps, [box] * 3, tolerance=3).tolist() == [True, False, True]
    assert pointing_game_hits(maps[:1], [torch.zeros(0, 4)]).tolist() == [False]


def test_peak_points_is_the_argmax_of_a_single_peak():
    maps = torch.rand(6, 17, 23)
    width = maps.shape[-1]
    flat = maps.flatten(1).argmax(1)
    expected = torch.stack([flat % width, flat // width], 1).float() + 0.5
    assert torch.equal(peak_points(maps), expected)


def test_peak_of_a_plateau_is_its_centre_whatever_the_scan_order():
    """A box-shaped maximum points at the box's centre, and a flipped map at the flipped point.

    The map is a flat 0.7 box on a gradient, resized bilinearly as maps are
    brought to the original image, so the plateau carries rounding noise.
    """
    low = torch.linspace(0, 0.3, 24).repeat(16, 1)
    low[3:12, 5:20] = 0.7  # rows 3..11, columns 5..19: centre pixel (12, 7)
    maps = torch.nn.functional.interpolate(low[None, None], size=(48, 72), mode='bilinear',
                                           align_corners=False)[0]
    x, y = peak_points(maps)[0].tolist()
    assert abs(x - 12.5 * 3) <= 1.5 and abs(y - 7.5 * 3) <= 1.5
    fx, fy = peak_points(maps.flip(-1))[0].tolist()
    gx, gy = peak_points(maps.flip(-2))[0].tolist()
    assert abs(fx - (72 - x)) <= 1 and fy == y
    assert gx == x and abs(gy - (48 - y)) <= 1
    # The plateau's first pixel in row-major order lies outside this box; its centre inside.
    box = torch.tensor([[30.0, 15.0, 45.0, 30.0]])
    assert pointing_game_hits(maps, [box]).tolist() == [True]


def _fraction_of_object_score(object_mask):
    """A 'model' whose score is the fraction of object pixels still present."""
    def score(images):
        return (images[:, 0] * object_mask).sum((1, 2)) / object_mask.sum()
    return score


def test_insertion_deletion_perfect_and_inverted_orderings():
    mask = torch.zeros(16, 16)
    mask[4:8, 4:8] = 1  # the object: 16 of 256 pixels
    images = torch.ones(1, 3, 16, 16)
    canvas = torch.zeros(1, 3, 16, 16)
    score = _fraction_of_object_score(mask)
    perfect = insertion_deletion(score, images, mask[None], canvas, canvas, steps=16)
    inverted = insertion_deletion(score, images, (1 - mask)[None], canvas, canvas, steps=16)
    # Perfect: the object is fully inserted after the first step (1/16 of pixels).
    assert perfect['insertion'][0, 1] == 1 and perfect['deletion'][0, 1] == 0
    assert perfect['insertion_auc'] > 0.9 and perfect['deletion_auc'] < 0.1
    assert inverted['insertion_auc'] < 0.1 and inverted['deletion_auc'] > 0.9
    for curve in ('insertion', 'deletion'):
        assert perfect[curve].shape == (1, 17)


def test_uniform_map_has_complexity_one_and_adcc_zero():
    maps = torch.ones(2, 8, 8)
    result = adcc(torch.tensor([0.9, 0.8]), torch.tensor([0.9, 0.8]), maps, maps)
    torch.testing.assert_close(result['complexity'], torch.ones(2))
    torch.testing.assert_close(result['adcc'], torch.zeros(2))
    torch.testing.assert_close(result['avg_drop'], torch.zeros(2))


def test_adcc_of_a_good_explanation():
    maps = torch.zeros(1, 8, 8)
    maps[0, 2:4, 2:4] = 1  # complexity 4 / 64
    result = adcc(torch.tensor([0.8]), torch.tensor([0.6]), maps, maps)
    assert abs(result['avg_drop'].item() - 0.25) < 1e-6
    assert result['coherency'].item() == 1.0
    expected = 3 / (1 / 1.0 + 1 / (1 - 4 / 64) + 1 / 0.75)
    assert abs(result['adcc'].item() - expected) < 1e-6


def test_baselines_are_in_range_and_image_independent():
    random = random_maps((3, 32, 40), seed=1)
    assert random.shape == (3, 32, 40) and random.min() == 0 and random.max() == 1
    torch.testing.assert_close(random, random_maps((3, 32, 40), seed=1))
    blob = centre_blob_maps((2, 31, 41))
    assert blob[0].argmax() == 15 * 41 + 20 and torch.equal(blob[0], blob[1])


def test_padded_batch_scores_each_image_on_its_own_region():
    """Two images of different sizes padded into one batch, with ``valid``: the
    same curves, coherency and complexity as each image alone, unpadded; the
    padding is never painted."""
    generator = torch.Generator().manual_seed(0)
    sizes = [(12, 16), (16, 10)]
    height, width = 16, 16
    images = torch.zeros(2, 3, height, width)
    maps, other_maps = torch.zeros(2, height, width), torch.zeros(2, height, width)
    valid = torch.zeros(2, height, width, dtype=torch.bool)
    alone = []
    for row, (h, w) in enumerate(sizes):
        image, saliency, other = (torch.rand(1, 3, h, w, generator=generator),
                                  torch.rand(1, h, w, generator=generator),
                                  torch.rand(1, h, w, generator=generator))
        images[row, :, :h, :w], maps[row, :h, :w], other_maps[row, :h, :w] = \
            image[0], saliency[0], other[0]
        images[row, :, h:, :], images[row, :, :, w:] = 7.0, 7.0  # padding, never painted
        valid[row, :h, :w] = True
        alone.append((image, saliency, other))
    padding_seen = []

    def score(batch):  # mean of the first channel over each image's own region
        padding_seen.append(batch.masked_select(~valid[:, None].expand_as(batch)))
        sums = (batch[:, 0] * valid).sum((1, 2))
        return sums / valid.sum((1, 2))

    def score_alone(batch):
        return batch[:, 0].mean((1, 2))

    canvas = torch.zeros_like(images)
    padded = insertion_deletion(score, images, maps, canvas, canvas, steps=5, valid=valid)
    for row, (image, saliency, _) in enumerate(alone):
        blank = torch.zeros_like(image)
        reference = insertion_deletion(score_alone, image, saliency, blank, blank, steps=5)
        for key in ('insertion', 'deletion', 'insertion_auc', 'deletion_auc'):
            torch.testing.assert_close(padded[key][row], reference[key][0])
    assert all(torch.all(seen == 7.0) for seen in padding_seen)

    parts = adcc(torch.ones(2), torch.ones(2), maps, other_maps, valid)
    for row, (_, saliency, other) in enumerate(alone):
        # Coherency is (Pearson + 1) / 2 over the image's own pixels (numpy's corrcoef).
        pearson = np.corrcoef(saliency.flatten().numpy(), other.flatten().numpy())[0, 1]
        assert parts['coherency'][row].item() == pytest.approx((pearson + 1) / 2, abs=1e-6)
        assert parts['complexity'][row].item() == pytest.approx(saliency.mean().item(), abs=1e-6)


@pytest.mark.parametrize('cell', [(7, 7), (0, 7), (3, 0)])
def test_a_peak_on_an_outer_cell_is_read_on_that_cell(cell):
    """Beyond the outer cell centres a map repeats its outer cells: read within its cells.

    A ResNet's 8 x 8 grid on a 256 px image puts cell k at pixel 32 k; the map
    is held constant from pixel 224 (cell 7) to the border at 256, so a
    maximum on cell 7 is a 32 px plateau whose centre, 240, lies half a cell
    outside the cell.
    """
    grid, meta = CellGrid(32.0, 32.0, 0.5, 0.5), dict(ori_shape=(256, 256), img_shape=(256, 256))
    raw = torch.rand(1, 8, 8) * 0.5
    raw[0, cell[0], cell[1]] = 1.0
    maps = to_original_image(raw, meta, (256, 256), grid)
    region = cell_span_on_original_image((8, 8), grid, meta, (256, 256))
    x, y = peak_points(maps, region)[0].tolist()
    assert (x, y) == (cell[1] * 32 + 0.5, cell[0] * 32 + 0.5)  # the cell's own pixel
    # An object of 24 px around the cell: a hit read on the cells only.
    cx, cy = cell[1] * 32, cell[0] * 32
    box = torch.tensor([[cx - 12.0, cy - 12.0, cx + 12.0, cy + 12.0]])
    assert pointing_game_hits(maps, [box], within=region).tolist() == [True]
    if cell == (7, 7):  # the whole-image reading lands on the plateau's centre, off the box
        assert pointing_game_hits(maps, [box]).tolist() == [False]


def test_an_empty_region_reads_the_whole_map():
    maps = torch.stack([_peak(5, 5), _peak(15, 3)])
    nowhere = torch.zeros(2, 20, 20, dtype=torch.bool)
    assert torch.equal(peak_points(maps, nowhere), peak_points(maps))
    left = torch.zeros(20, 20, dtype=torch.bool)
    left[:, :10] = True  # one region for both maps: the second peak is outside it
    points = peak_points(maps + torch.linspace(0, 0.1, 20), left)
    assert points[0].tolist() == [5.5, 5.5] and points[1, 0] < 10
