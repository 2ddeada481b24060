"""The explain-mode wrapper model, and building the user's model as the Runner does."""
from .builder import build_model, model_config
from .explain_model import ExplainModel
from .saliency_model import SaliencyModel
from .saliency_targets import maps_on_original_image, peak_region_on_original_image

__all__ = ['ExplainModel', 'SaliencyModel', 'build_model', 'maps_on_original_image',
           'model_config', 'peak_region_on_original_image']
