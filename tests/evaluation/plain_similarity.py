"""Spearman and SSIM written plainly from their published definitions, for the tests.

Cross-checked once (not at test time) in a separate venv: on the maps of
tests/evaluation/test_similarity.py these equal ``scipy.stats.spearmanr``
(scipy 1.17.1) to 1e-16 and ``skimage.metrics.structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``
(scikit-image 0.26.0) to 2e-16.
"""
import math

import numpy as np


def plain_ranks(values):
    """1-based ranks, tied values sharing the mean of the positions they occupy."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def plain_spearman(x, y):
    """Pearson's r of the ranks: sum((a - mean a)(b - mean b)) / sqrt(sum(.)^2 sum(.)^2)."""
    a, b = plain_ranks(list(x)), plain_ranks(list(y))
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    num = sum((p - mean_a) * (q - mean_b) for p, q in zip(a, b))
    den = math.sqrt(sum((p - mean_a) ** 2 for p in a) * sum((q - mean_b) ** 2 for q in b))
    return num / den


def plain_ssim(x, y):
    """Wang, Bovik, Sheikh, Simoncelli, IEEE TIP 13(4) 2004, eqs. (13)-(17).

    11x11 circular-symmetric Gaussian weights w (sigma 1.5, sum 1); per window
    mu = sum w x, sigma^2 = sum w (x - mu)^2, sigma_xy = sum w (x - mu_x)(y - mu_y);
    C1 = (K1 L)^2, C2 = (K2 L)^2 with K1 = 0.01, K2 = 0.03, L = 1; MSSIM = mean
    over the windows that fit in the image.
    """
    k1, k2, dynamic_range, size, sigma = 0.01, 0.03, 1.0, 11, 1.5
    c1, c2 = (k1 * dynamic_range) ** 2, (k2 * dynamic_range) ** 2
    w = np.array([[math.exp(-((i - 5) ** 2 + (j - 5) ** 2) / (2 * sigma ** 2))
                   for j in range(size)] for i in range(size)])
    w /= w.sum()
    values = []
    for top in range(x.shape[0] - size + 1):
        for left in range(x.shape[1] - size + 1):
            px, py = x[top:top + size, left:left + size], y[top:top + size, left:left + size]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cov = (w * (px - mx) * (py - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cov + c2) /
                          ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))
