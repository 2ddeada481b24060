"""Errors that come from what the user gave, not from a bug.

Tools print these in one line, without a traceback. Each subclass also
derives from the built-in type callers would expect (``ValueError``, ...).
"""
import pickle


class UserInputError(Exception):
    """A file or setting the user gave cannot be used; the message says which and why."""


class TargetClassError(UserInputError, ValueError):
    """A class to explain that the model does not have."""


class UnknownAlgorithmError(UserInputError, ValueError):
    """An explain algorithm name or option that mmxai does not know."""


class UnsupportedModelError(UserInputError, ValueError):
    """The model cannot be explained by the requested algorithm."""


class UnsafeCheckpointError(UserInputError, pickle.UnpicklingError):
    """A checkpoint's pickle references something outside the allow-list."""


class CheckpointDownloadError(UserInputError, OSError):
    """A checkpoint URL that cannot be fetched; the message gives the reason (HTTP status, ...)."""


class CheckpointMismatchError(UserInputError, RuntimeError):
    """A checkpoint's weights do not fit the model they are loaded into."""


class ReportInputError(UserInputError, ValueError):
    """Explain runs or sanity checks that cannot be read or cannot share one report."""


class InputInsideOutputError(UserInputError, ValueError):
    """An input folder is the output folder or inside it (its maps would become inputs)."""


class UnreadableImageError(UserInputError, ValueError):
    """An input file that cannot be explained; the message names file and reason."""


class CascadeError(UserInputError, ValueError):
    """A cascade step names no module of the model, or one with nothing to randomise."""


class UnsupportedExportError(UserInputError, ValueError):
    """The model and algorithm pair cannot be exported with a saliency output."""


class ExportedModelError(UserInputError, ValueError):
    """An exported model file that cannot be run (missing, not mmxai's, wrong input)."""
