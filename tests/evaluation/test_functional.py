"""Metrics on hand-made cases with known answers."""
import torch

from mmxai.evaluation import (
    adcc,
    centre_blob_maps,
    insertion_deletion,
    pointing_game_hits,
    random_maps,
)


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
