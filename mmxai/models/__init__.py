"""The explain-mode wrapper model."""
from .explain_model import ExplainModel

__all__ = ['ExplainModel']
