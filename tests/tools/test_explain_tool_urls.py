"""tools/explain.py with a checkpoint by URL (issue 26), its main() run in-process."""
import importlib.util
import json
import os
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader

from tests.helpers import (
    CLS_DEMO_CONFIG,
    REPO,
    build_model,
    code_running_checkpoint,
    load_config,
    mmengine_own_loaders,
    random_images,
    serve_folder,
)

CLASSES = ['red_square', 'green_circle', 'blue_triangle']


def _explain_tool():
    spec = importlib.util.spec_from_file_location('explain_tool', osp.join(REPO, 'tools',
                                                                           'explain.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    """(folder, base URL, input folder): a random-weight demo ResNet's checkpoint over HTTP."""
    folder = tmp_path_factory.mktemp('served')
    model = build_model(load_config(CLS_DEMO_CONFIG))
    torch.save({'state_dict': model.state_dict(), 'meta': {'dataset_meta': {'classes': CLASSES}}},
               str(folder / 'resnet_tiny.pth'))
    inputs = tmp_path_factory.mktemp('inputs')
    for index, image in enumerate(random_images(2, 64, 80)):
        cv2.imwrite(str(inputs / f'image{index}.png'), image)
    with serve_folder(str(folder)) as base:
        yield folder, base, str(inputs)


@pytest.fixture
def run_tool(tmp_path, monkeypatch, capsys):
    """Runs tools/explain.py's main() with arguments; returns (exit status, stderr)."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.setenv('LOCAL_RANK', '0')
    # MMEngine's own loaders, as in a fresh process: the tool must register mmxai's.
    monkeypatch.setattr(CheckpointLoader, '_schemes', mmengine_own_loaders())
    tool = _explain_tool()

    def run(*args):
        monkeypatch.setattr(sys, 'argv', ['explain.py', *args])
        capsys.readouterr()
        try:
            tool.main()
            status = 0
        except SystemExit as exit_:
            status = exit_.code
        return status, capsys.readouterr().err

    return run


def _written(out):
    return {osp.relpath(osp.join(root, name), out): osp.join(root, name)
            for root, _, names in os.walk(out) for name in names
            if name.endswith(('_saliency.npy', '_saliency.png', '_overlay.png'))}


def test_tool_explains_a_checkpoint_by_url_as_the_local_file(served, run_tool, tmp_path):
    folder, base, inputs = served
    url = f'{base}/resnet_tiny.pth'
    for checkpoint, out in ((str(folder / 'resnet_tiny.pth'), 'local'), (url, 'remote')):
        status, err = run_tool(CLS_DEMO_CONFIG, checkpoint, '--input', inputs, '--output',
                               str(tmp_path / out), '--save-raw', '--explain-all-classes')
        assert status == 0, err[-3000:]
    local, remote = _written(str(tmp_path / 'local')), _written(str(tmp_path / 'remote'))
    assert sorted(local) == sorted(remote) and len(local) == 2 * 3 * 3  # images x classes x kinds
    for name, path in local.items():
        if name.endswith('.npy'):
            np.testing.assert_array_equal(np.load(remote[name]), np.load(path))
        else:
            np.testing.assert_array_equal(cv2.imread(remote[name]), cv2.imread(path))
    manifest = json.load(open(tmp_path / 'remote' / 'manifest.json'))
    assert manifest['checkpoint'] == url and manifest['classes'] == CLASSES


def test_tool_errors_by_url_are_one_line(served, run_tool, tmp_path):
    folder, base, inputs = served
    marker = str(tmp_path / 'marker')
    code_running_checkpoint(str(folder / 'evil_tool.pth'), marker)
    cases = [  # (checkpoint, what the one line says)
        (f'{base}/missing.pth', f'cannot download checkpoint {base}/missing.pth: HTTP 404'),
        (f'{base}/evil_tool.pth', f'Refused to load checkpoint {base}/evil_tool.pth'),
        (str(tmp_path / 'missing.pth'), f'checkpoint {tmp_path}/missing.pth does not exist'),
        (f'{base}/model.onnx', f'exported model {base}/model.onnx must be a local file'),
    ]
    for checkpoint, words in cases:
        status, err = run_tool(CLS_DEMO_CONFIG, checkpoint, '--input', inputs,
                               '--output', str(tmp_path / 'out'))
        assert status == 2, err[-3000:]
        assert 'Traceback' not in err
        last = err.strip().splitlines()[-1]
        assert last.startswith(f'explain.py: error: {words}'), last
    assert not osp.exists(marker)
