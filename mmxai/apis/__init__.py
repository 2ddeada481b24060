"""Functions that set mmxai up from a config and checkpoint."""
from .cli import (
    check_checkpoint,
    check_files_exist,
    check_inputs,
    check_output_dir,
    exit_on_user_error,
    load_tool_config,
    log_every_rank,
    process_batches,
    setup_distributed,
    teardown_distributed,
)
from .explain_config import explain_config, inference_pipeline, set_data_root, use_exported_model
from .inference import ExportedSaliencyExplainer, ImageExplainer, SaliencyExplainer
from .sanity import run_sanity_checks

__all__ = ['ExportedSaliencyExplainer', 'ImageExplainer', 'SaliencyExplainer', 'check_checkpoint',
           'check_files_exist', 'check_inputs',
           'check_output_dir', 'exit_on_user_error', 'explain_config', 'inference_pipeline',
           'load_tool_config', 'log_every_rank', 'process_batches', 'run_sanity_checks',
           'set_data_root', 'setup_distributed',
           'teardown_distributed', 'use_exported_model']
