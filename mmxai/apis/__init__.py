"""Functions that set mmxai up from a config and checkpoint."""
from .explain_config import explain_config, inference_pipeline, set_data_root

__all__ = ['explain_config', 'inference_pipeline', 'set_data_root']
