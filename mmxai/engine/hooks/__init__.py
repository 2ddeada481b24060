"""mmxai's hooks, one per file."""
from .explain_hook import ExplainHook
from .prepare_explain_hook import PrepareExplainHook
from .progress_bar_hook import ProgressBarHook
from .safe_checkpoint_loading_hook import SafeCheckpointLoadingHook

__all__ = ['ExplainHook', 'PrepareExplainHook', 'ProgressBarHook', 'SafeCheckpointLoadingHook']
