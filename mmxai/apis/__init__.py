"""Functions that set mmxai up from a config and checkpoint."""
from .explain_config import explain_config, inference_pipeline, set_data_root
from .inference import SaliencyExplainer

__all__ = ['SaliencyExplainer', 'explain_config', 'inference_pipeline', 'set_data_root']
