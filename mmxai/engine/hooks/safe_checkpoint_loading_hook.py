"""Hook that makes a Runner load its checkpoint with mmxai's weights-only loaders."""
from typing import TYPE_CHECKING

from mmengine.hooks import Hook

from ...checkpoint import register_safe_loaders
from ...registry import HOOKS

if TYPE_CHECKING:
    from mmengine.runner import Runner


@HOOKS.register_module()
class SafeCheckpointLoadingHook(Hook):
    """Calls :func:`~mmxai.checkpoint.register_safe_loaders` before the run.

    The Runner calls ``before_run`` before it loads ``load_from`` (or
    resumes), so with this hook a config's checkpoint, by path or URL, loads
    weights-only (on torch >= 2.6, also a Runner checkpoint, which plain MMEngine
    0.10 cannot load) and a pickle that would run code is refused. For
    configs without :class:`PrepareExplainHook`, which does the same::

        custom_imports = dict(imports=['mmxai'])
        custom_hooks = [dict(type='mmxai.SafeCheckpointLoadingHook')]
    """

    def before_run(self, runner: 'Runner') -> None:
        register_safe_loaders()
