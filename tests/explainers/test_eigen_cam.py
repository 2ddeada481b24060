import numpy as np
import torch

from mmxai.explainers.eigen_cam import first_component_projection


def _numpy_eigencam(features: np.ndarray) -> np.ndarray:
    """Reference: SVD of the centred (hw, C) matrix, as in the EigenCAM paper."""
    channels, height, width = features.shape
    matrix = features.reshape(channels, -1).T
    centred = matrix - matrix.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    projection = centred @ vt[0]
    # Features of either sign: activation strength is the L2 norm over channels.
    activation = np.linalg.norm(matrix, axis=1) if (matrix < 0).any() else matrix.mean(axis=1)
    if np.corrcoef(projection, activation)[0, 1] < 0:
        projection = -projection
    return projection.reshape(height, width)


def test_matches_svd_reference_with_positive_sign():
    rng = np.random.default_rng(0)
    # A dominant direction plus noise, so the first component is well defined.
    base = rng.normal(size=(3, 1, 1)) * rng.normal(size=(1, 9, 10))
    features = np.stack([
        np.concatenate([base, np.zeros((13, 9, 10))]) + 0.05 * rng.normal(size=(16, 9, 10))
        for _ in range(2)]).astype(np.float32)
    maps = first_component_projection(torch.from_numpy(features))
    assert maps.shape == (2, 1, 9, 10)
    for index in range(2):
        np.testing.assert_allclose(maps[index, 0].numpy(), _numpy_eigencam(features[index]),
                                   rtol=1e-3, atol=1e-4)


def test_batched_equals_single():
    features = torch.randn(3, 8, 6, 7)
    batched = first_component_projection(features)
    single = torch.cat([first_component_projection(f[None]) for f in features])
    torch.testing.assert_close(batched, single)


def test_constant_features_give_finite_maps():
    maps = first_component_projection(torch.ones(2, 8, 5, 5))
    assert torch.isfinite(maps).all()
