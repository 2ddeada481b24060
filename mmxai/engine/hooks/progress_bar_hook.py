"""Hook that shows training and testing as progress bars on the console."""
import sys
from typing import IO, TYPE_CHECKING, Any, Optional, Sequence

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.utils import ProgressBar

from ...registry import HOOKS

if TYPE_CHECKING:
    from mmengine.runner import Runner


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """One MMEngine :class:`~mmengine.utils.ProgressBar` per training and per test run.

    Training counts iterations (from the resumed one), testing counts
    batches of the process's share. Only the main process draws. Validation
    during training draws nothing: its bar would break the training bar.
    A message printed while a bar is drawn goes below it
    (:meth:`end_line`, which :class:`~mmxai.engine.QuietRunner` calls
    before its console prints), and the bar goes on under the message.

    Args:
        file (IO, optional): Where the bars go; default ``sys.stdout`` at the
            time a bar starts.
    """

    priority = 'VERY_LOW'

    def __init__(self, file: Optional[IO[str]] = None) -> None:
        self.file = file
        self._bar: Optional[ProgressBar] = None
        self._mid_line = False

    def end_line(self) -> None:
        """End the line of the bar being drawn, if any, so that what is printed next has its own."""
        if self._bar is not None and self._mid_line:
            self._bar.file.write('\n')
            self._bar.file.flush()
            self._mid_line = False

    def _start(self, count: int) -> None:
        if is_main_process() and count > 0:
            self._bar = ProgressBar(count, file=self.file or sys.stdout)
            self._mid_line = True

    def _advance(self) -> None:
        if self._bar is not None:
            self._bar.update()
            self._mid_line = True

    def _finish(self) -> None:
        self.end_line()
        self._bar = None

    def before_train(self, runner: 'Runner') -> None:
        self._start(runner.max_iters - runner.iter)

    def after_train_iter(self, runner: 'Runner', batch_idx: int, data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        self._advance()

    def after_train(self, runner: 'Runner') -> None:
        self._finish()

    def before_test_epoch(self, runner: 'Runner') -> None:
        self._start(len(runner.test_dataloader))

    def after_test_iter(self, runner: 'Runner', batch_idx: int, data_batch: Any = None,
                        outputs: Optional[Sequence] = None) -> None:
        self._advance()

    def after_test_epoch(self, runner: 'Runner', metrics: Optional[dict] = None) -> None:
        self._finish()
