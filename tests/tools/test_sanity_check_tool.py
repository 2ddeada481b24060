"""tools/sanity_check.py in a subprocess: table printed, sanity.json and sanity.html written."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

from tests.helpers import REPO

TOOL = osp.join(REPO, 'tools', 'sanity_check.py')


def _run(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO), timeout=600)


def test_sanity_tool_writes_table_json_and_page(trained_classifier, tmp_path):
    config, checkpoint = trained_classifier
    output = tmp_path / 'out'
    result = _run(config, checkpoint, '--explain-algorithm', 'classwisesaliencymap',
                  'activationmap', '--cascade', 'head', 'backbone.layer4', '--num-images', '4',
                  '--page-images', '2', '--output', str(output))
    assert result.returncode == 0, result.stderr[-3000:]
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


def test_sanity_tool_refuses_a_step_with_nothing_to_randomise(trained_classifier, tmp_path):
    config, checkpoint = trained_classifier
    result = _run(config, checkpoint, '--explain-algorithm', 'activationmap', '--cascade',
                  'neck', '--output', str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "sanity_check.py: error: cascade step 'neck' has nothing to randomise: "
        'GlobalAveragePooling has no parameters')
