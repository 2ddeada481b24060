"""tools/sanity_check.py in a subprocess: table printed, sanity.json and sanity.html
written, and shown by tools/report.py in the report viewer."""
import json
import math
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from tests.browser import Browser
from tests.helpers import REPO

TOOL = osp.join(REPO, 'tools', 'sanity_check.py')


def _run(*args, tool=TOOL):
    return subprocess.run([sys.executable, tool, *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO), timeout=600)


@pytest.fixture(scope='module')
def checked(trained_classifier, tmp_path_factory):
    """The tool's output folder on 4 images, 2 steps, 2 algorithms, and what it printed."""
    config, checkpoint = trained_classifier
    output = tmp_path_factory.mktemp('sanity') / 'out'
    result = _run(config, checkpoint, '--explain-algorithm', 'classwisesaliencymap',
                  'activationmap', '--cascade', 'head', 'backbone.layer4', '--num-images', '4',
                  '--page-images', '2', '--output', str(output))
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result


def test_sanity_tool_writes_table_json_and_page(checked):
    output, result = checked
    assert 'verdict: FLAG' in result.stdout  # the activation map ignores the head
    report = json.loads((output / 'sanity.json').read_text())
    assert report['num_images'] == 4 and report['steps'] == [['head'], ['backbone.layer4']]
    assert report['results']['activationmap']['verdict'] == 'flag'
    assert report['results']['activationmap']['random_label'] is None
    assert report['results']['classwisesaliencymap']['random_label']['maps'] == 4
    page = (output / 'sanity.html').read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    # Per algorithm 2 images x (image, trained, 2 steps); class-wise: + another class.
    assert len(sources) == 2 * 4 + 2 * 5
    for source in sources:
        assert not osp.isabs(source) and '..' not in source
        assert (output / source).is_file(), source
    assert 'id="sanity-table"' in page and 'data-algorithm="activationmap"' in page


def test_report_tool_shows_the_sanity_checks(checked, tmp_path):
    """The viewer's sanity view: the table of sanity.json and every tile of its cascades."""
    output, _ = checked
    report = json.loads((output / 'sanity.json').read_text())
    result = _run('--sanity', str(output), '--output', str(tmp_path / 'report'),
                  tool=osp.join(REPO, 'tools', 'report.py'))
    assert result.returncode == 0, result.stderr[-3000:]
    with Browser() as browser:
        browser.open(f'file://{tmp_path}/report/index.html')
        browser.wait_for("document.body.dataset.ready === '1'")
        assert browser.evaluate("document.getElementById('view').dataset.view") == 'sanity'
        rows = browser.evaluate(
            "[...document.querySelectorAll('.sanity-table tr[data-algorithm]')].map(r => "
            "[r.dataset.algorithm, ...[...r.cells].slice(1).map(c => c.textContent)])")
        expected = []
        for name, values in report['results'].items():
            cells = [values['verdict']]
            for step in values['cascade'] + [values['random_label']]:
                if step is None:
                    cells.append('–')
                    continue
                kept = math.floor(100 * step['kept'] + 0.5)  # JavaScript's Math.round
                cells.append(f"{step['spearman']:.2f} · {kept}% ≥ thr · SSIM {step['ssim']:.2f}" +
                             (' FLAG' if step['flagged'] else ''))
            expected.append([name, *cells])
        assert rows == expected
        files = [cell['file'] for cascade in report['page']['cascades'].values()
                 for row in cascade['rows'] for cell in row if 'file' in cell]
        assert len(files) == 2 * 4 + 2 * 5
        browser.wait_for("document.getElementById('report-status').dataset.loaded == " +
                         str(len(files)))
        status = browser.evaluate("Object.assign({}, "
                                  "document.getElementById('report-status').dataset)")
        assert status == dict(images=str(len(files)), loaded=str(len(files)), failed='0')
        assert browser.errors() == []


def test_sanity_tool_refuses_a_step_with_nothing_to_randomise(trained_classifier, tmp_path):
    config, checkpoint = trained_classifier
    result = _run(config, checkpoint, '--explain-algorithm', 'activationmap', '--cascade',
                  'neck', '--output', str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "sanity_check.py: error: cascade step 'neck' has nothing to randomise: "
        'GlobalAveragePooling has no parameters')
