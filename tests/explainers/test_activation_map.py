import torch

from mmxai.explainers import merge_levels


def test_merge_levels_brings_levels_to_the_largest_and_averages():
    large = torch.ones(2, 1, 8, 8)
    small = torch.full((2, 1, 4, 4), 3.0)
    merged = merge_levels([small, large])
    assert merged.shape == (2, 1, 8, 8)
    torch.testing.assert_close(merged, torch.full((2, 1, 8, 8), 2.0))
