"""Hook that puts a Runner's model into explain mode after loading weights."""
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

from mmengine.hooks import Hook

from ...checkpoint import check_checkpoint_fits, checkpoint_class_names, register_safe_loaders
from ...models import ExplainModel
from ...models.saliency_targets import resolve_classes
from ...registry import HOOKS
from ..runner_model import unwrapped_model

if TYPE_CHECKING:
    from mmengine.runner import Runner


@HOOKS.register_module()
class PrepareExplainHook(Hook):
    """Wraps ``runner.model`` in :class:`ExplainModel` for testing and validation.

    Like MMEngine's ``PrepareTTAHook``, the wrapper is installed in
    ``before_test`` (and ``before_val_epoch``), after the checkpoint was
    loaded into the plain model, so checkpoint keys still match. A checkpoint
    that does not fit the model exactly is an error, not a warning. Before the
    run (so before the Runner loads ``load_from``, by path or URL) it calls
    :func:`~mmxai.checkpoint.register_safe_loaders`: the checkpoint loads
    weights-only, as with :class:`SafeCheckpointLoadingHook`.

    Args:
        explainer (str | dict): Algorithm name or explainer config.
        explain_all_classes (bool): Explain every class.
        target_classes (Sequence[int | str], optional): Classes to explain, by
            index or name.
        score_thr (float, optional): Detection score above which a class is
            explained, for every explainer that thresholds detections too (None:
            the explainer's own, else 0.3).
        strict_checkpoint (bool): Refuse checkpoints that do not fit.
        box_targets (Sequence[str]): Detectors: boxes to explain too, see
            :class:`~mmxai.models.ExplainModel`.
    """

    priority = 'NORMAL'

    def __init__(self,
                 explainer: Union[str, dict] = 'classwisesaliencymap',
                 explain_all_classes: bool = False,
                 target_classes: Optional[Sequence[Union[int, str]]] = None,
                 score_thr: Optional[float] = None,
                 strict_checkpoint: bool = True,
                 box_targets: Sequence[str] = ()) -> None:
        self.explainer = explainer
        self.explain_all_classes = explain_all_classes
        self.target_classes = target_classes
        self.score_thr = score_thr
        self.strict_checkpoint = strict_checkpoint
        self.box_targets = tuple(box_targets)
        self.checkpoint_classes: Optional[Sequence[str]] = None
        self._plain_model: Any = None

    def before_run(self, runner: 'Runner') -> None:
        register_safe_loaders()

    def after_load_checkpoint(self, runner: 'Runner', checkpoint: dict) -> None:
        model = unwrapped_model(runner)
        if self.strict_checkpoint:
            check_checkpoint_fits(model, checkpoint, runner.cfg.get('load_from'))
        self.checkpoint_classes = checkpoint_class_names(checkpoint)

    def before_test(self, runner: 'Runner') -> None:
        self._wrap(runner, runner.test_dataloader)

    def before_val_epoch(self, runner: 'Runner') -> None:
        self._wrap(runner, runner.val_dataloader)

    def after_val_epoch(self, runner: 'Runner', metrics: Optional[dict] = None) -> None:
        if self._plain_model is not None:  # give training (and checkpoints) the plain model
            runner.model, self._plain_model = self._plain_model, None

    def _wrap(self, runner: 'Runner', dataloader: Any) -> None:
        if isinstance(runner.model, ExplainModel):
            return
        self._plain_model = runner.model
        model = unwrapped_model(runner)
        names = self.checkpoint_classes or dataloader.dataset.metainfo.get('classes')
        runner.model = ExplainModel(
            module=model, explainer=self.explainer,
            explain_all_classes=self.explain_all_classes,
            target_classes=resolve_classes(self.target_classes, names),
            score_thr=self.score_thr, class_names=names, box_targets=self.box_targets)

