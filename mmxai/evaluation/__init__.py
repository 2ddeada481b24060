"""Saliency quality metrics."""
from .functional import (
                         adcc,
                         centre_blob_maps,
                         insertion_deletion,
                         pearson,
                         pointing_game_hits,
                         random_maps,
)

__all__ = ['adcc', 'centre_blob_maps', 'insertion_deletion', 'pearson', 'pointing_game_hits',
           'random_maps']
