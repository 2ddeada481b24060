"""Functions that set mmxai up from a config and checkpoint."""
from .cli import check_files_exist, load_tool_config
from .explain_config import explain_config, inference_pipeline, set_data_root
from .inference import SaliencyExplainer

__all__ = ['SaliencyExplainer', 'check_files_exist', 'explain_config', 'inference_pipeline',
           'load_tool_config', 'set_data_root']
