"""The explain-mode wrapper model, and building the user's model as the Runner does."""
from .builder import build_model
from .explain_model import ExplainModel

__all__ = ['ExplainModel', 'build_model']
