"""A killed explain run, run again, ends exactly as an uninterrupted run."""
import filecmp
import json
import os
import os.path as osp
import re
import shutil
import signal

from mmxai.utils.io import temporary_path
from tests.tools.test_explain_tool import _full_log, _run

KILLER = '''
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class KillAfterImages(Hook):
    """SIGKILLs its own process once `images` images were explained and written."""

    priority = 'LOWEST'  # after mmxai's ExplainHook wrote the batch

    def __init__(self, images):
        self.images, self.done = images, 0

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.done += len(outputs or ())
        if self.done >= self.images:
            os.kill(os.getpid(), signal.SIGKILL)
'''


def _files(root):
    return sorted(osp.relpath(osp.join(folder, name), root)
                  for folder, _, names in os.walk(root) for name in names)


def test_rerun_after_sigkill_finishes_the_job_byte_for_byte(trained_classifier,
                                                            shapes_classification, tmp_path):
    config, checkpoint = trained_classifier
    images = str(tmp_path / 'images')
    os.makedirs(images)
    for folder in sorted(os.listdir(osp.join(shapes_classification, 'val')))[:2]:
        for name in sorted(os.listdir(osp.join(shapes_classification, 'val', folder)))[:8]:
            if name.endswith('.png'):
                shutil.copy(osp.join(shapes_classification, 'val', folder, name),
                            osp.join(images, f'{folder}_{name}'))
    total, killed_after = len(os.listdir(images)), 3
    assert total >= 6
    out = str(tmp_path / 'out')
    logs = str(tmp_path / 'logs')  # the same command each time: one log folder
    args = ['--input', images, '--output', out, '--save-raw', '--batch-size', '1',
            '--device', 'cpu']

    reference = _run(config, checkpoint, *args, '--work-dir', logs)
    assert reference.returncode == 0, reference.stderr[-3000:]
    shutil.move(out, str(tmp_path / 'reference'))

    (tmp_path / 'killer.py').write_text(KILLER)
    (tmp_path / 'killing.py').write_text(
        f'_base_ = [{config!r}]\ncustom_imports = dict(imports=["killer"])\n'
        f'custom_hooks = [dict(type="KillAfterImages", images={killed_after})]\n')
    env = dict(PYTHONPATH=str(tmp_path))
    killed = _run(str(tmp_path / 'killing.py'), checkpoint, *args, '--work-dir',
                  str(tmp_path / 'log1'), env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    records = [f for f in _files(out) if f.endswith('explanation.json')]
    assert len(records) == killed_after and not osp.exists(osp.join(out, 'manifest.json'))
    times = {f: os.stat(osp.join(out, f)).st_mtime_ns for f in records}
    # What SIGKILL in the middle of a write leaves: a temporary file, never a final name.
    open(temporary_path(osp.join(out, 'overlay.png')), 'wb').write(b'half')

    resumed = _run(config, checkpoint, *args, '--work-dir', logs)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr + _full_log(resumed)
    assert f'{total - killed_after} explained now, {killed_after} before' in log
    assert re.search(rf'rank 0: explaining {total - killed_after} of {total - killed_after} ', log)
    assert {f: os.stat(osp.join(out, f)).st_mtime_ns for f in records} == times  # not redone

    assert _files(out) == _files(str(tmp_path / 'reference'))
    match, mismatch, errors = filecmp.cmpfiles(out, str(tmp_path / 'reference'), _files(out),
                                               shallow=False)
    assert not mismatch and not errors and sorted(match) == _files(out), (mismatch, errors)
    manifest = json.load(open(osp.join(out, 'manifest.json')))
    assert manifest['num_images'] == total and len(manifest['images']) == total


def test_other_settings_do_not_resume(trained_classifier, shapes_classification, tmp_path):
    config, checkpoint = trained_classifier
    folder = osp.join(shapes_classification, 'val', 'red_square')
    out = str(tmp_path / 'out')
    first = _run(config, checkpoint, '--input', folder, '--output', out)
    assert first.returncode == 0, first.stderr[-3000:]
    count = json.load(open(osp.join(out, 'manifest.json')))['num_images']
    for extra, redone in (([], 0), (['--explain-all-classes'], count), (['--no-resume'], count)):
        again = _run(config, checkpoint, '--input', folder, '--output', out, *extra)
        assert again.returncode == 0, again.stderr[-3000:]
        assert f'{redone} explained now' in again.stdout + again.stderr, extra
