import torch

from mmxai.explainers.activation_map import activation_strength


def test_activation_is_the_mean_of_non_negative_and_the_norm_of_signed_features():
    features = torch.rand(2, 5, 3, 4)
    torch.testing.assert_close(activation_strength(features), features.mean(1, keepdim=True))
    signed = features - 0.5
    torch.testing.assert_close(activation_strength(signed), signed.norm(dim=1, keepdim=True))
    # The sign of signed features does not flip the map.
    torch.testing.assert_close(activation_strength(-signed), activation_strength(signed))
