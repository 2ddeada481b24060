"""Post-processing of saliency maps for people: geometry, colour, overlay."""
from .colormap import colorize, overlay, to_uint8
from .geometry import normalize_per_map, resample_cells, to_original_image

__all__ = ['colorize', 'overlay', 'to_uint8', 'normalize_per_map', 'resample_cells',
           'to_original_image']
from .report import write_report  # noqa: E402
from .writer import SaliencyWriter, predictions_of  # noqa: E402

__all__ += ['SaliencyWriter', 'predictions_of', 'write_report']
