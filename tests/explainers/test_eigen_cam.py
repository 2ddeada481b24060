from unittest import mock

import numpy as np
import pytest
import torch

from mmxai.explainers.eigen_cam import first_component_projection


def _numpy_eigencam(features: np.ndarray, non_negative: bool) -> np.ndarray:
    """Reference: SVD of the centred (hw, C) matrix, as in the EigenCAM paper."""
    channels, height, width = features.shape
    matrix = features.reshape(channels, -1).T
    centred = matrix - matrix.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    projection = centred @ vt[0]
    # After a ReLU the activation map is the channel mean, else the L2 norm over channels.
    activation = matrix.mean(axis=1) if non_negative else np.linalg.norm(matrix, axis=1)
    if np.corrcoef(projection, activation)[0, 1] < 0:
        projection = -projection
    return projection.reshape(height, width)


def _features(channels, height, width, seed=0):
    """A dominant direction plus noise, so the first component is well defined."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(3, 1, 1)) * rng.normal(size=(1, height, width))
    return np.stack([
        np.concatenate([base, np.zeros((channels - 3, height, width))])
        + 0.05 * rng.normal(size=(channels, height, width)) for _ in range(2)]).astype(np.float32)


@pytest.mark.parametrize('channels, height, width', [
    (16, 9, 10),  # hw > C: FPN levels
    (64, 4, 5),  # hw < C: a classifier's last stage
])
@pytest.mark.parametrize('non_negative', [False, True])
def test_matches_svd_reference_with_positive_sign(channels, height, width, non_negative):
    features = _features(channels, height, width)
    if non_negative:
        features = np.abs(features)
    maps = first_component_projection(torch.from_numpy(features), non_negative)
    assert maps.shape == (2, 1, height, width)
    for index in range(2):
        np.testing.assert_allclose(maps[index, 0].numpy(),
                                   _numpy_eigencam(features[index], non_negative),
                                   rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize('channels, height, width', [(16, 9, 10), (512, 8, 8)])
def test_decomposes_the_smaller_gram_matrix(channels, height, width):
    """A (B, 512, 8, 8) ResNet stage decomposes 64 x 64 matrices, not 512 x 512."""
    sizes = []
    eigh = torch.linalg.eigh

    def recording_eigh(matrix, *args, **kwargs):
        sizes.append(matrix.shape[-1])
        return eigh(matrix, *args, **kwargs)

    with mock.patch.object(torch.linalg, 'eigh', recording_eigh):
        first_component_projection(torch.randn(2, channels, height, width), False)
    assert sizes == [min(channels, height * width)]


def test_batched_equals_single():
    features = torch.randn(3, 8, 6, 7)
    batched = first_component_projection(features, False)
    single = torch.cat([first_component_projection(f[None], False) for f in features])
    torch.testing.assert_close(batched, single)


@pytest.mark.parametrize('channels', [8, 64])
def test_constant_features_give_finite_maps(channels):
    maps = first_component_projection(torch.ones(2, channels, 5, 5), True)
    assert torch.isfinite(maps).all()
