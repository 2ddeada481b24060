import torch

from mmxai.explainers.activation_map import activation_strength
from mmxai.geometry import merge_levels


def test_merge_levels_brings_levels_to_the_largest_and_averages():
    large = torch.ones(2, 1, 8, 8)
    small = torch.full((2, 1, 4, 4), 3.0)
    merged = merge_levels([small, large])
    assert merged.shape == (2, 1, 8, 8)
    torch.testing.assert_close(merged, torch.full((2, 1, 8, 8), 2.0))


def test_activation_is_the_mean_of_non_negative_and_the_norm_of_signed_features():
    features = torch.rand(2, 5, 3, 4)
    torch.testing.assert_close(activation_strength(features), features.mean(1, keepdim=True))
    signed = features - 0.5
    torch.testing.assert_close(activation_strength(signed), signed.norm(dim=1, keepdim=True))
    # The sign of signed features does not flip the map.
    torch.testing.assert_close(activation_strength(-signed), activation_strength(signed))
