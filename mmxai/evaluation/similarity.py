"""How alike two saliency maps are: Spearman rank correlation and SSIM, batched in torch."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..geometry import normalize_per_map
from .functional import pearson

#: SSIM of Wang et al. 2004 (IEEE TIP 13(4)): an 11x11 Gaussian window of
#: standard deviation 1.5, K1 = 0.01, K2 = 0.03, dynamic range L = 1 (maps in [0, 1]).
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def average_ranks(values: Tensor) -> Tensor:
    """1-based ranks of each row, ties given the mean of the ranks they span.

    Args:
        values (Tensor): (N, n) values.

    Returns:
        Tensor: (N, n) float64 ranks (``scipy.stats.rankdata(method='average')`` per row).
    """
    values = values.double().contiguous()
    ordered = values.sort(dim=1).values
    below = torch.searchsorted(ordered, values, right=False)  # values smaller than each
    up_to = torch.searchsorted(ordered, values, right=True)   # values smaller or equal
    return (below + up_to + 1).double() / 2


def spearman(first: Tensor, second: Tensor) -> Tensor:
    """Spearman rank correlation of paired maps: the Pearson correlation of their ranks.

    Ties get average ranks. A constant map has no ranking: the correlation
    is undefined (NaN, as ``scipy.stats.spearmanr`` returns).

    Args:
        first (Tensor): (N, ...) maps; every map is flattened.
        second (Tensor): Maps of the same shape.

    Returns:
        Tensor: (N,) float64 correlations in [-1, 1], NaN where a map is constant.
    """
    if first.shape != second.shape:
        raise ValueError(f'maps to compare differ in shape: {tuple(first.shape)} and '
                         f'{tuple(second.shape)}')
    flat = [maps.flatten(1) for maps in (first, second)]
    constant = [(f.amax(dim=1) == f.amin(dim=1)) for f in flat]
    correlation = pearson(*(average_ranks(f) for f in flat)).clamp(-1, 1)
    return torch.where(constant[0] | constant[1], torch.nan, correlation)


def gaussian_line(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> Tensor:
    """(size,) float64 Gaussian weights summing to 1; their outer product is SSIM's window."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    line = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    return line / line.sum()


def ssim(first: Tensor, second: Tensor, data_range: float = 1.0) -> Tensor:
    """Mean structural similarity of paired maps (Wang et al. 2004).

    Local means, variances and covariance are Gaussian-weighted over every
    11x11 window that lies inside the map ("valid" positions, as the
    authors' reference code filters), and the SSIM map
    ``(2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))``
    with ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2`` is averaged.

    Args:
        first (Tensor): (N, H, W) maps with H, W >= 11.
        second (Tensor): Maps of the same shape.
        data_range (float): L, the range of the values (1 for min-max normalised maps).

    Returns:
        Tensor: (N,) float64 mean SSIM; 1 for identical maps.
    """
    if first.shape != second.shape or first.dim() != 3:
        raise ValueError(f'SSIM compares (N, H, W) maps of one shape, got {tuple(first.shape)} '
                         f'and {tuple(second.shape)}')
    if min(first.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f'SSIM needs maps of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, '
                         f'got {tuple(first.shape[-2:])}')
    x, y = first.double()[:, None], second.double()[:, None]
    # The 2-D window is the outer product of a 1-D Gaussian: filter rows, then columns.
    line = gaussian_line().to(x.device)

    def local_mean(maps: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(maps, line.view(1, 1, 1, -1)), line.view(1, 1, -1, 1))

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x ** 2
    var_y = local_mean(y * y) - mu_y ** 2
    cov_xy = local_mean(x * y) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / \
        ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return index.flatten(1).mean(dim=1)


def comparable_maps(maps: Tensor, size: Tuple[int, int]) -> Tensor:
    """Maps resized (bilinear) to ``size`` and min-max normalised per map, as files are.

    Args:
        maps (Tensor): (N, h, w) maps of any scale.
        size (tuple[int, int]): (H, W) to compare at.

    Returns:
        Tensor: (N, H, W) float64 in [0, 1]; a constant map becomes all zeros.
    """
    resized = F.interpolate(maps[:, None].double(), size=size, mode='bilinear',
                            align_corners=False)[:, 0]
    return normalize_per_map(resized)
