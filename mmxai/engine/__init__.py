"""Engine components: hooks and the explain test loop."""
from .hooks import ExplainHook, PrepareExplainHook, SafeCheckpointLoadingHook
from .loops import ExplainTestLoop

__all__ = ['ExplainHook', 'ExplainTestLoop', 'PrepareExplainHook', 'SafeCheckpointLoadingHook']
