"""Saliency quality metrics and sanity checks."""
from .evaluator import BASELINES, METRICS, ExplanationEvaluator, format_table
from .functional import (
    adcc,
    centre_blob_maps,
    insertion_deletion,
    masked_mean,
    peak_points,
    pearson,
    pointing_game_hits,
    random_maps,
)
from .pointing_game_metric import PointingGameMetric
from .randomization import CascadeError, cascade_models, default_cascade, randomize_modules
from .sanity import (
    SPEARMAN_THRESHOLD,
    SanityChecker,
    format_sanity_table,
)
from .similarity import average_ranks, spearman, ssim

__all__ = ['BASELINES', 'METRICS', 'ExplanationEvaluator', 'PointingGameMetric', 'format_table',
           'adcc', 'centre_blob_maps', 'insertion_deletion', 'masked_mean', 'pearson',
           'peak_points', 'pointing_game_hits', 'random_maps', 'CascadeError', 'SPEARMAN_THRESHOLD',
           'SanityChecker', 'average_ranks', 'cascade_models', 'default_cascade',
           'format_sanity_table', 'randomize_modules', 'spearman', 'ssim']
