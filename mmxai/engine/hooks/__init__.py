"""mmxai's hooks, one per file."""
from .explain_hook import ExplainHook
from .prepare_explain_hook import PrepareExplainHook
from .progress_bar_hook import ProgressBarHook

__all__ = ['ExplainHook', 'PrepareExplainHook', 'ProgressBarHook']
