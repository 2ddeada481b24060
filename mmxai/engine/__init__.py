"""Engine components: hooks, the explain test loop and a Runner with a quiet console."""
from .hooks import ExplainHook, PrepareExplainHook, ProgressBarHook, SafeCheckpointLoadingHook
from .loops import ExplainTestLoop
from .runner import QuietRunner

__all__ = ['ExplainHook', 'ExplainTestLoop', 'PrepareExplainHook', 'ProgressBarHook', 'QuietRunner',
           'SafeCheckpointLoadingHook']
