"""`make demo`'s script at reduced size: data, training, every algorithm, report."""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest

from mmxai.explainers import algorithms_for
from tests.helpers import REPO


@pytest.fixture(scope='module')
def demo_output(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('demo'))
    result = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'demo.py'), '--output', out,
         '--train-images', '12', '--val-images', '3', '--max-iters', '2'],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _expected_images(out):
    """Images the report must show: per input one predictions image, then a map
    and an overlay per explanation of every algorithm."""
    total = 0
    for task in ('detection', 'instance_segmentation', 'classification'):
        manifests = [json.loads(open(osp.join(out, 'explain', task, algorithm,
                                              'manifest.json')).read())
                     for algorithm in algorithms_for(task, black_box=False)]
        for manifest in manifests:
            assert manifest['num_images'] == 3 and 'demo.py' in manifest['command']
        total += manifests[0]['num_images']
        total += sum(2 * len(entry['explanations'])
                     for manifest in manifests for entry in manifest['images'])
    return total


def test_demo_writes_a_report_without_broken_links(demo_output):
    report = osp.join(demo_output, 'explain', 'index.html')
    page = open(report).read()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == _expected_images(demo_output)
    for source in sources:
        assert not osp.isabs(source) and osp.isfile(osp.join(osp.dirname(report), source))
    assert 'demo.py' in page  # the command that made it


def _chromium():
    browser = shutil.which('chromium') or shutil.which('chromium-browser')
    assert browser, 'Chromium is needed: tools/setup_env.sh installs it (apt-get install chromium)'
    return browser


def test_report_loads_in_a_real_browser(demo_output, tmp_path):
    report = osp.join(demo_output, 'explain', 'index.html')
    flags = ['--headless', '--no-sandbox', '--disable-gpu', '--virtual-time-budget=10000']
    dom = subprocess.run([_chromium(), *flags, '--dump-dom', f'file://{report}'],
                         capture_output=True, text=True, timeout=180).stdout
    status = re.search(r'id="report-status" data-images="(\d+)" data-loaded="(\d+)"', dom)
    assert status, dom[:2000]
    expected = _expected_images(demo_output)
    assert int(status.group(1)) == expected and int(status.group(2)) == expected
    screenshot = str(tmp_path / 'report.png')
    subprocess.run([_chromium(), *flags, '--window-size=1400,1000', f'--screenshot={screenshot}',
                    f'file://{report}'], capture_output=True, timeout=180)
    assert osp.getsize(screenshot) > 10_000
