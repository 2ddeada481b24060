"""The explain-mode wrapper model and its adapters."""
from .adapters import ClassifierAdapter, DetectorAdapter, ModelAdapter, build_adapter
from .det_heads import SUPPORTED_HEADS
from .explain_model import ExplainModel

__all__ = ['ClassifierAdapter', 'DetectorAdapter', 'ModelAdapter', 'build_adapter',
           'SUPPORTED_HEADS', 'ExplainModel']
