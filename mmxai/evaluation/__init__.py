"""Saliency quality metrics."""
from .evaluator import BASELINES, METRICS, ExplanationEvaluator, format_table
from .functional import (
    adcc,
    centre_blob_maps,
    insertion_deletion,
    masked_mean,
    pearson,
    pointing_game_hits,
    random_maps,
)
from .pointing_game_metric import PointingGameMetric

__all__ = ['BASELINES', 'METRICS', 'ExplanationEvaluator', 'PointingGameMetric', 'format_table',
           'adcc', 'centre_blob_maps', 'insertion_deletion', 'masked_mean', 'pearson',
           'pointing_game_hits', 'random_maps']
