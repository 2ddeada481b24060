import re

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from mmxai.apis import set_data_root
from mmxai.engine import QuietRunner
from tests.helpers import CLS_DEMO_CONFIG, load_config

#: The start of an MMLogger console record: ``12/03 17:44:16 - mmengine - WARNING - ``.
RECORD_START = re.compile(r'^\d\d/\d\d \d\d:\d\d:\d\d - \S+ - (WARNING|ERROR) - ')


@HOOKS.register_module(force=True)  # by name: the Runner dumps its config
class WarnMidTest(Hook):
    """Logs a warning after the first test batch, while the bar is drawn."""

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if batch_idx == 0:
            print_log('planted warning', logger='current', level=30)
            print_log('planted info', logger='current', level=20)


def test_console_shows_the_bar_and_warnings_on_their_own_lines(shapes_classification, tmp_path,
                                                              capsys):
    cfg = set_data_root(load_config(CLS_DEMO_CONFIG), shapes_classification)
    cfg.test_dataloader.batch_size = 8  # 30 images: 4 batches, the warning after the first
    cfg.work_dir = str(tmp_path / 'work')
    cfg.custom_hooks = [dict(type='mmengine.WarnMidTest')]
    QuietRunner.from_cfg(cfg).test()
    lines = capsys.readouterr().out.splitlines()
    warned = [line for line in lines if 'planted warning' in line]
    assert len(warned) == 1 and RECORD_START.match(warned[0]), lines
    assert not any('planted info' in line or ' - INFO - ' in line for line in lines), lines
    # The bar: drawn before the warning (the line above it), it goes on below it to 4/4.
    index = lines.index(warned[0])
    assert lines[index - 1].startswith('[') and '/4,' in lines[index - 1], lines
    assert lines[-1].startswith('[') and '4/4' in lines[-1], lines
    # Everything went to the log file too.
    log = next((tmp_path / 'work').rglob('*.log')).read_text()
    assert 'planted warning' in log and 'planted info' in log


def test_runners_started_in_the_same_second_keep_their_own_logs(shapes_classification, tmp_path,
                                                                 monkeypatch):
    # MMEngine names a run's logger <config>_<timestamp>: two runs of one config in the
    # same second (the demo explains with one method after the other) share it.
    import time
    now = time.time()
    monkeypatch.setattr(time, 'time', lambda: now)
    logs = []
    for run in ('first', 'second'):
        cfg = set_data_root(load_config(CLS_DEMO_CONFIG), shapes_classification)
        cfg.work_dir = str(tmp_path / run)
        runner = QuietRunner.from_cfg(cfg)
        runner.logger.warning(f'this is the {run} run')
        logs.append(next((tmp_path / run).rglob('*.log')).read_text())
    assert runner.timestamp == time.strftime('%Y%m%d_%H%M%S', time.localtime(now))
    assert 'first run' in logs[0] and 'second run' not in logs[0]
    assert 'second run' in logs[1] and 'first run' not in logs[1]
