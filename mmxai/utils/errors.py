"""The base of errors that come from what the user gave, not from a bug."""


class UserInputError(Exception):
    """A file or setting the user gave cannot be used; the message says which and why.

    Tools print these in one line, without a traceback. Each subclass also
    derives from the built-in type callers would expect (``ValueError``, ...).
    """


class TargetClassError(UserInputError, ValueError):
    """A class to explain that the model does not have."""


class UnknownAlgorithmError(UserInputError, ValueError):
    """An explain algorithm name or option that mmxai does not know."""
