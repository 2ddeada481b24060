"""tools/report.py in a subprocess: run folders become tasks of the viewer's data."""
import json
import os
import os.path as osp
import subprocess
import sys

from tests.helpers import REPO, report_data
from tests.visualization.test_report import make_runs

TOOL = osp.join(REPO, 'tools', 'report.py')


def _run(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO), timeout=300)


def test_runs_of_one_config_are_one_task(tmp_path):
    runs, _ = make_runs(str(tmp_path), 5)
    for run, config in zip(runs, ('configs/atss_small.py', 'other/atss_small.py')):
        path = osp.join(run['output_dir'], 'manifest.json')
        manifest = json.load(open(path))
        json.dump(dict(manifest, config=config), open(path, 'w'))
    folders = [run['output_dir'] for run in runs]
    result = _run(*folders, '--output', str(tmp_path / 'report'))
    assert result.returncode == 0, result.stderr[-3000:]
    tasks = report_data(tmp_path / 'report')['tasks']
    assert [(t['name'], t['algorithms'], len(t['images'])) for t in tasks] == [
        ('atss_small', ['classmap', 'agnostic'], 5)]
    # A task named on the command line.
    result = _run(folders[0], f'mine={folders[1]}', '--output', str(tmp_path / 'named'))
    assert result.returncode == 0, result.stderr[-3000:]
    assert [(t['name'], t['algorithms']) for t in report_data(tmp_path / 'named')['tasks']] == [
        ('atss_small', ['classmap']), ('mine', ['agnostic'])]


def test_a_folder_without_results_is_refused_in_one_line(tmp_path):
    result = _run(str(tmp_path), '--output', str(tmp_path / 'report'))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f'report.py: error: {tmp_path}/manifest.json: cannot be read '
        '(No such file or directory)')
    assert not osp.exists(tmp_path / 'report' / 'index.html')


def test_sanity_checks_of_an_older_mmxai_are_refused(tmp_path):
    runs, _ = make_runs(str(tmp_path), 2)
    old = tmp_path / 'old_sanity'
    old.mkdir()
    (old / 'sanity.json').write_text(json.dumps(dict(num_images=2, results={}, steps=[])))
    result = _run(runs[0]['output_dir'], '--sanity', str(old), '--output', str(tmp_path / 'r'))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f'report.py: error: {old}/sanity.json: no cascade of maps in it (made by an older '
        'mmxai): run tools/sanity_check.py again')
