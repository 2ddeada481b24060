"""Errors of exporting and running exported models (one line for the tools)."""
from ..utils.errors import UserInputError


class UnsupportedExportError(UserInputError, ValueError):
    """The model and algorithm pair cannot be exported with a saliency output."""


class ExportedModelError(UserInputError, ValueError):
    """An exported model file that cannot be run (missing, not mmxai's, wrong input)."""
