"""MMEngine's Runner with a quiet console: progress bars, warnings and errors."""
import contextlib
import io
import logging
from typing import Any, Callable, Dict, List, Optional, Union

from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.runner import Runner

from .hooks import ProgressBarHook


class _EndBarLine(logging.Filter):
    """A console filter that ends the progress bar's line before a record is printed."""

    def __init__(self, bar: ProgressBarHook) -> None:
        super().__init__()
        self.bar = bar

    def filter(self, record: logging.LogRecord) -> bool:
        self.bar.end_line()
        return True


class QuietRunner(Runner):
    """:class:`~mmengine.runner.Runner` whose console shows progress bars and warnings.

    The log file (``<work_dir>/<timestamp>/<timestamp>.log``) is the
    Runner's as usual: the environment, the config and every logged
    iteration at ``log_level``. The console shows only records of level
    ``WARNING`` and above, and a :class:`~mmxai.engine.hooks.ProgressBarHook`
    bar for training and testing; a warning printed while a bar is drawn
    starts on its own line. Build it as the Runner:
    ``QuietRunner.from_cfg(cfg)``.
    """

    def build_logger(self, log_level: Union[int, str] = 'INFO', log_file: Optional[str] = None,
                     **kwargs: Any) -> MMLogger:
        """The Runner's logger, its console handler raised to ``WARNING``.

        Its name is the experiment's (``<config>_<timestamp>``), made unique in
        the process: MMEngine hands a second Runner of the same config started
        in the same second (a tool explaining with several methods in turn) the
        first one's logger and visualizer, so its log would go to the first
        run's file.
        """
        if 'name' not in kwargs:
            name, number = self._experiment_name, 2
            while MMLogger.check_instance_created(name):
                name, number = f'{self._experiment_name}_{number}', number + 1
            self._experiment_name = name  # the visualizer, built next, takes it too
        logger = super().build_logger(log_level=log_level, log_file=log_file, **kwargs)
        for handler in logger.handlers:
            if not isinstance(handler, logging.FileHandler):  # the console
                handler.setLevel(max(handler.level, logging.WARNING))
        return logger

    def register_hooks(self, default_hooks: Optional[Dict[str, Union[Hook, Dict]]] = None,
                       custom_hooks: Optional[List[Union[Hook, Dict]]] = None) -> None:
        """The config's hooks and a progress bar."""
        super().register_hooks(default_hooks, custom_hooks)
        bar = ProgressBarHook()
        self.register_hook(bar)
        for handler in self._console_handlers():
            handler.addFilter(_EndBarLine(bar))

    def _console_handlers(self) -> List[logging.Handler]:
        return [h for h in self.logger.handlers if not isinstance(h, logging.FileHandler)]

    def load_checkpoint(self, filename: str, map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False, revise_keys: Optional[list] = None) -> dict:
        """The Runner's ``load_checkpoint``; what MMEngine prints meanwhile goes to the log.

        MMEngine's checkpoint loader announces the file with ``print()``
        (no logger reaches it from the Runner), one console line per run.
        """
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            checkpoint = super().load_checkpoint(
                filename, map_location, strict,
                [(r'^module.', '')] if revise_keys is None else revise_keys)
        for line in printed.getvalue().splitlines():
            self.logger.info(line)
        return checkpoint
