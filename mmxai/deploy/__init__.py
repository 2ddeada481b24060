"""Saliency maps from deployed models: export to ONNX / OpenVINO IR and run them.

ONNX, ONNX Runtime and OpenVINO are optional (``pip install "mmxai[deploy]"``);
they are imported only when a model is exported or run.
"""
from ..utils.errors import ExportedModelError, UnsupportedExportError
from .export_wrapper import EXPORTABLE_EXPLAINERS, ExplainExportWrapper
from .exported_model import ExportedExplainModel
from .exporter import FORMATS, default_input_shape, export_explain_model, export_model
from .metadata import SALIENCY_OUTPUT, ExportMetadata
from .runtime import RUNTIMES, default_algorithm, is_exported_model, open_session, read_metadata

__all__ = ['EXPORTABLE_EXPLAINERS', 'FORMATS', 'RUNTIMES', 'SALIENCY_OUTPUT',
           'ExplainExportWrapper', 'ExportMetadata', 'ExportedExplainModel',
           'ExportedModelError', 'UnsupportedExportError',
           'default_algorithm', 'default_input_shape', 'export_explain_model', 'export_model',
           'is_exported_model', 'open_session', 'read_metadata']
