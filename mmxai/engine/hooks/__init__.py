"""mmxai's hooks, one per file."""
from .explain_hook import ExplainHook
from .prepare_explain_hook import PrepareExplainHook

__all__ = ['ExplainHook', 'PrepareExplainHook']
