"""Checkpoints by URL through the Python API and the explain config (issue 26)."""
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader

from mmxai.apis import SaliencyExplainer, explain_config
from mmxai.utils import CheckpointDownloadError, UnsafeCheckpointError
from tests.helpers import (
    CLS_DEMO_CONFIG,
    build_model,
    closed_port,
    code_running_checkpoint,
    load_config,
    mmengine_own_loaders,
    random_images,
    serve_folder,
)

CLASSES = ['red_square', 'green_circle', 'blue_triangle']


@pytest.fixture(scope='module')
def served_classifier(tmp_path_factory):
    """(folder, base URL, image): a random-weight demo ResNet's checkpoint served over HTTP."""
    import torch
    folder = tmp_path_factory.mktemp('served')
    model = build_model(load_config(CLS_DEMO_CONFIG))
    torch.save({'state_dict': model.state_dict(), 'meta': {'dataset_meta': {'classes': CLASSES}}},
               str(folder / 'resnet_tiny.pth'))
    image = str(tmp_path_factory.mktemp('images') / 'image.png')
    cv2.imwrite(image, random_images(1, 64, 80)[0])
    with serve_folder(str(folder)) as base:
        yield folder, base, image


@pytest.fixture(autouse=True)
def torch_home(tmp_path, monkeypatch):
    """Downloads go to a temporary torch.hub cache, never ~/.cache."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    return tmp_path / 'torch_home'


def test_api_explains_a_checkpoint_by_url_as_the_local_file(served_classifier, torch_home):
    folder, base, image = served_classifier
    local = SaliencyExplainer(CLS_DEMO_CONFIG, str(folder / 'resnet_tiny.pth'),
                              explain_all_classes=True)([image])[0]
    remote = SaliencyExplainer(CLS_DEMO_CONFIG, f'{base}/resnet_tiny.pth',
                               explain_all_classes=True)([image])[0]
    assert remote['class_names'] == local['class_names'] == CLASSES  # from the checkpoint
    assert remote['maps'].shape == (3, 64, 80)
    np.testing.assert_array_equal(remote['maps'], local['maps'])
    np.testing.assert_array_equal(remote['predictions']['scores'], local['predictions']['scores'])
    assert osp.isfile(torch_home / 'hub' / 'checkpoints' / 'resnet_tiny.pth')


def test_api_refuses_a_code_running_checkpoint_by_url(served_classifier, tmp_path):
    folder, base, _ = served_classifier
    marker = str(tmp_path / 'marker')
    code_running_checkpoint(str(folder / 'evil_api.pth'), marker)
    with pytest.raises(UnsafeCheckpointError, match=f'{base}/evil_api.pth'):
        SaliencyExplainer(CLS_DEMO_CONFIG, f'{base}/evil_api.pth')
    assert not osp.exists(marker)


@pytest.mark.parametrize('where', ['404', 'closed port'])
def test_api_unfetchable_url_is_a_one_line_error(where, served_classifier):
    _, base, _ = served_classifier
    url = f'{base}/missing.pth' if where == '404' else \
        f'http://127.0.0.1:{closed_port()}/resnet_tiny.pth'
    with pytest.raises(CheckpointDownloadError) as error:
        SaliencyExplainer(CLS_DEMO_CONFIG, url)
    message = str(error.value)
    assert '\n' not in message and url in message and 'does not exist' not in message
    assert ('HTTP 404' if where == '404' else 'connection refused') in message, message


def test_explain_config_loads_a_url_weights_only(served_classifier, tmp_path, monkeypatch):
    """With MMEngine's own loaders (weights_only=False for URLs), the explain config's
    PrepareExplainHook still makes the Runner refuse a pickle that runs code."""
    monkeypatch.setattr(CheckpointLoader, '_schemes', mmengine_own_loaders())
    folder, base, image = served_classifier
    marker = str(tmp_path / 'marker')
    code_running_checkpoint(str(folder / 'evil_runner.pth'), marker)
    cfg = explain_config(load_config(CLS_DEMO_CONFIG), f'{base}/evil_runner.pth',
                         str(tmp_path / 'out'), inputs=[image])
    cfg.work_dir = str(tmp_path / 'work')
    with pytest.raises(UnsafeCheckpointError, match=f'{base}/evil_runner.pth'):
        Runner.from_cfg(cfg).test()
    assert not osp.exists(marker)
