"""Spearman and SSIM against their published definitions (tests/evaluation/plain_similarity.py)."""
import numpy as np
import pytest
import torch
from scipy.stats import rankdata, spearmanr

from mmxai.evaluation import average_ranks, spearman, ssim
from tests.evaluation.plain_similarity import plain_spearman, plain_ssim


def test_average_ranks_share_ties():
    values = torch.tensor([[3.0, 1.0, 3.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0, 1.0]])
    assert average_ranks(values).tolist() == [[4.0, 1.0, 4.0, 2.0, 4.0],
                                              [2.5, 2.5, 2.5, 2.5, 5.0]]
    assert average_ranks(values).tolist() == rankdata(values.numpy(), axis=1).tolist()


def test_spearman_equals_pearson_of_average_ranks():
    rng = np.random.default_rng(0)
    first = rng.random((5, 6, 7))
    second = first + rng.normal(0, 0.3, size=first.shape)
    first[1] = np.round(first[1] * 3) / 3     # many ties
    second[2] = np.round(second[2] * 2) / 2
    second[3] = -first[3]
    got = spearman(torch.from_numpy(first), torch.from_numpy(second))
    expected = [plain_spearman(a.ravel(), b.ravel()) for a, b in zip(first, second)]
    assert got.tolist() == pytest.approx(expected, abs=1e-12)
    scipy_values = [spearmanr(a.ravel(), b.ravel()).statistic for a, b in zip(first, second)]
    assert got.tolist() == pytest.approx(scipy_values, abs=1e-12)
    assert got[3] == pytest.approx(-1.0)
    # Ranks only: any increasing transform of a map leaves it unchanged.
    transformed = spearman(torch.from_numpy(np.exp(5 * first)), torch.from_numpy(second))
    assert transformed.tolist() == pytest.approx(got.tolist(), abs=1e-12)


def test_spearman_of_constant_maps():
    varying = torch.arange(16.0).view(1, 4, 4)
    constant = torch.full((1, 4, 4), 0.3)
    assert spearman(varying, varying).item() == 1.0
    for pair in ((constant, constant), (varying, constant), (constant, varying)):
        assert spearman(*pair).isnan().all()  # undefined, as scipy.stats.spearmanr says


def test_ssim_equals_wang_2004():
    rng = np.random.default_rng(1)
    first = rng.random((3, 16, 19))
    second = np.clip(first + rng.normal(0, 0.2, size=first.shape), 0, 1)
    second[2] = rng.random((16, 19))
    got = ssim(torch.from_numpy(first), torch.from_numpy(second))
    expected = [plain_ssim(a, b) for a, b in zip(first, second)]
    assert got.tolist() == pytest.approx(expected, abs=1e-10)
    assert ssim(torch.from_numpy(first), torch.from_numpy(first)).tolist() == \
        pytest.approx([1.0] * 3, abs=1e-12)
    swapped = ssim(torch.from_numpy(second), torch.from_numpy(first))
    assert swapped.tolist() == pytest.approx(got.tolist(), abs=1e-12)
    assert got[2] < 0.2 < got[0] < 1  # unrelated maps score far below similar ones


def test_ssim_refuses_maps_smaller_than_its_window():
    with pytest.raises(ValueError, match='at least 11x11'):
        ssim(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8))
