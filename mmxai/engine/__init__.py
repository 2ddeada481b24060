"""Engine components: hooks."""
from .hooks import ExplainHook, PrepareExplainHook

__all__ = ['ExplainHook', 'PrepareExplainHook']
