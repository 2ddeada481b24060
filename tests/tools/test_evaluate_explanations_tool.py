"""tools/evaluate_explanations.py in a subprocess: table printed, JSON written."""
import json
import os
import os.path as osp
import subprocess
import sys

from tests.helpers import REPO


def test_evaluate_tool_writes_every_method(trained_classifier, tmp_path):
    config, checkpoint = trained_classifier
    output = str(tmp_path / 'quality.json')
    result = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'evaluate_explanations.py'), config, checkpoint,
         '--explain-algorithm', 'classwisesaliencymap', 'activationmap', '--steps', '2',
         '--insertion-canvas', 'black', '--output', output],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'pointing_game' in result.stdout and 'centre_blob' in result.stdout
    results = json.loads(open(output).read())['results']
    assert set(results) == {'classwisesaliencymap', 'activationmap', 'random', 'centre_blob'}
    for values in results.values():
        assert 0 <= values['pointing_game'] <= 1 and 0 <= values['adcc'] <= 1
