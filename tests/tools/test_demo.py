"""`make demo`'s script at reduced size: data, training, every algorithm."""
import json
import os
import os.path as osp
import subprocess
import sys

from mmxai.explainers import ALGORITHMS
from tests.helpers import REPO


def test_demo_runs_end_to_end(tmp_path):
    out = str(tmp_path / 'demo')
    result = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'demo.py'), '--output', out,
         '--train-images', '12', '--val-images', '3', '--max-iters', '2'],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    for task in ('detection', 'classification'):
        for algorithm in ALGORITHMS:
            manifest = json.loads(open(osp.join(out, 'explain', task, algorithm,
                                                'manifest.json')).read())
            assert manifest['num_images'] == 3, (task, algorithm)
