"""tools/dist_explain.sh: two gloo processes on CPU equal one process, image for image."""
import filecmp
import glob
import json
import os
import os.path as osp
import re
import shutil
import socket
import subprocess
import sys

from tests.helpers import REPO
from tests.tools.test_explain_resume import _files
from tests.tools.test_explain_tool import _run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_two_processes_explain_each_image_once_like_one(trained_classifier,
                                                       shapes_classification, tmp_path):
    config, checkpoint = trained_classifier
    images = str(tmp_path / 'images')
    os.makedirs(images)
    source = osp.join(shapes_classification, 'val', 'blue_triangle')
    for name in sorted(n for n in os.listdir(source) if n.endswith('.png'))[:7]:
        shutil.copy(osp.join(source, name), images)
    total = len(os.listdir(images))
    assert total % 2 == 1  # DefaultSampler's round-up would repeat one image
    args = ['--input', images, '--save-raw', '--batch-size', '1', '--device', 'cpu']

    single = _run(config, checkpoint, *args, '--output', str(tmp_path / 'one'))
    assert single.returncode == 0, single.stderr[-3000:]
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(_free_port()), PYTHONPATH=REPO)
    result = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_explain.sh'), config, checkpoint, '2', *args,
         '--output', str(tmp_path / 'two'), '--work-dir', str(tmp_path / 'logs')],
        capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
    maps = [f for f in _files(one) if not f.startswith('logs') and f != 'manifest.json']
    assert maps == [f for f in _files(two) if f != 'manifest.json']
    match, mismatch, errors = filecmp.cmpfiles(one, two, maps, shallow=False)
    assert not mismatch and not errors and len(match) == len(maps)
    manifests = [json.load(open(osp.join(out, 'manifest.json'))) for out in (one, two)]
    assert manifests[1]['num_images'] == total == len(manifests[1]['images'])
    assert manifests[0]['images'] == manifests[1]['images']

    shares = {}
    for log in glob.glob(str(tmp_path / 'logs' / '*' / '*.log')):
        for rank, count in re.findall(r'rank (\d): explaining (\d+) of \d+ images',
                                      open(log).read()):
            shares[int(rank)] = int(count)
    assert shares == {0: (total + 1) // 2, 1: total // 2}, shares
