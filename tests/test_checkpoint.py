import http.server
import os
import os.path as osp
import re
import shutil
import socket
import subprocess
import sys
import threading
import types
from unittest import mock

import pytest
import torch
from mmengine.runner import Runner, load_checkpoint
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from mmxai import checkpoint as mmxai_checkpoint
from mmxai.checkpoint import (
    is_local_checkpoint,
    load_checkpoint_file,
    register_safe_loaders,
    safe_load_checkpoint,
)
from mmxai.utils import CheckpointDownloadError, UnsafeCheckpointError, UserInputError
from tests.helpers import (
    DET_DEMO_CONFIG,
    REPO,
    Call,
    closed_port,
    load_config,
    mmengine_own_loaders,
    serve_folder,
    set_data_root,
    train,
)


def _getattr_chain_payload(marker: str) -> Call:
    """Reaches builtins.eval through getattr calls only, and calls it.

    ``getattr.__self__`` is the builtins module, so the real getattr yields
    ``eval``; torch's default allow-list holds ``_rebuild_from_type_v2``, which
    calls any function it is given. Runner checkpoints need ``builtins.getattr``
    (HistoryBuffer pickles ``getattr(HistoryBuffer, 'min')``), so this is the
    path an allow-list holding the real getattr opens.
    """
    from torch._tensor import _rebuild_from_type_v2
    builtins_module = Call(getattr, getattr, '__self__')
    evaluate = Call(getattr, builtins_module, 'eval')
    code = f"open({marker!r}, 'w').write('pwned')"
    return Call(_rebuild_from_type_v2, evaluate, torch.Tensor, (code, ), None)


def _save(payload, path: str) -> str:
    torch.save({'meta': {}, 'state_dict': {}, 'message_hub': payload}, path)
    return path


@pytest.fixture(scope='module')
def runner_checkpoint(shapes_detection, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('ckpt'))
    checkpoint = train(load_config(DET_DEMO_CONFIG), work_dir, shapes_detection, max_iters=2)
    return checkpoint


def test_runner_checkpoint_loads_with_weights_only(runner_checkpoint):
    checkpoint = load_checkpoint_file(runner_checkpoint)
    assert 'message_hub' in checkpoint and 'optimizer' in checkpoint
    # The same file, loaded without the trusted pickle path, has the same weights.
    reference = torch.load(runner_checkpoint, weights_only=False)['state_dict']
    assert checkpoint['state_dict'].keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(checkpoint['state_dict'][key], value), key


def test_weights_only_load_without_mmxai_fails(runner_checkpoint):
    """Shows what mmxai fixes: a plain torch.load of a Runner checkpoint fails."""
    code = ('import torch, sys\n'
            'try:\n'
            f'    torch.load({runner_checkpoint!r}, weights_only=True)\n'
            'except Exception as e:\n'
            '    sys.exit(3)\n')
    assert subprocess.run([sys.executable, '-c', code]).returncode == 3


def _runner_test(checkpoint: str, data_root: str, work_dir: str):
    cfg = set_data_root(load_config(DET_DEMO_CONFIG), data_root)
    cfg.load_from = checkpoint
    cfg.work_dir = work_dir
    cfg.custom_imports = dict(imports=['mmxai'], allow_failed_imports=False)
    cfg.custom_hooks = [dict(type='mmxai.SafeCheckpointLoadingHook')]
    Runner.from_cfg(cfg).test()


@pytest.mark.parametrize('payload', ['os.system', 'getattr-to-eval'])
def test_code_running_checkpoint_is_refused_through_runner(payload, shapes_detection, tmp_path,
                                                           monkeypatch):
    """SafeCheckpointLoadingHook registers mmxai's loaders before the Runner loads."""
    monkeypatch.setattr(CheckpointLoader, '_schemes', mmengine_own_loaders())
    marker = str(tmp_path / 'marker')
    if payload == 'os.system':
        evil = Call(os.system, f'touch {marker}')
    else:
        evil = _getattr_chain_payload(marker)
    path = _save(evil, str(tmp_path / 'evil.pth'))
    with pytest.raises(UnsafeCheckpointError) as error:
        _runner_test(path, shapes_detection, str(tmp_path / 'work'))
    assert path in str(error.value)
    assert not osp.exists(marker)


def test_getattr_payload_is_a_real_exploit_when_getattr_is_allowed(tmp_path):
    """The allow-list must not hold the real getattr: with it the payload runs."""
    marker = str(tmp_path / 'marker')
    path = _save(_getattr_chain_payload(marker), str(tmp_path / 'evil.pth'))
    code = ('import torch\n'
            'torch.serialization.add_safe_globals([getattr])\n'
            f'torch.load({path!r}, weights_only=True)\n')
    subprocess.run([sys.executable, '-c', code], capture_output=True)
    assert osp.exists(marker)


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))


# ------------------------------------------------ every scheme, through MMEngine
@pytest.fixture
def served(tmp_path, monkeypatch):
    """(folder, base URL): a folder served over HTTP on 127.0.0.1; torch.hub's
    download cache in a temporary folder."""
    folder = tmp_path / 'served'
    folder.mkdir()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path / 'mmengine_home'))
    with serve_folder(str(folder)) as base:
        yield folder, base


def _evil(kind: str, marker: str) -> Call:
    return Call(os.system, f'touch {marker}') if kind == 'os.system' \
        else _getattr_chain_payload(marker)


def _good_checkpoint(path: str):
    """A Runner-shaped checkpoint: weights, meta and a message hub (HistoryBuffer, numpy)."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('mmxai-test-checkpoint')
    for value in (0.5, 0.25):
        hub.update_scalar('train/loss', value)
    model = torch.nn.Linear(3, 2)
    torch.save({'meta': {'dataset_meta': {'classes': ['a', 'b']}}, 'state_dict': model.state_dict(),
                'message_hub': hub.state_dict()}, path)
    return model


@pytest.mark.parametrize('payload', ['os.system', 'getattr-to-eval'])
def test_code_running_checkpoint_over_http_is_refused(payload, served, tmp_path):
    folder, base = served
    marker = str(tmp_path / 'marker')
    _save(_evil(payload, marker), str(folder / 'evil.pth'))
    url = f'{base}/evil.pth'
    with pytest.raises(UnsafeCheckpointError, match=re.escape(url)):
        CheckpointLoader.load_checkpoint(url, map_location='cpu')
    with pytest.raises(UnsafeCheckpointError, match=re.escape(url)):
        load_checkpoint(torch.nn.Linear(3, 2), url, map_location='cpu')
    assert not osp.exists(marker)


def test_good_checkpoint_loads_over_http(served):
    folder, base = served
    reference = _good_checkpoint(str(folder / 'good.pth'))
    model = torch.nn.Linear(3, 2)
    checkpoint = load_checkpoint(model, f'{base}/good.pth', map_location='cpu', strict=True)
    assert checkpoint['meta']['dataset_meta']['classes'] == ['a', 'b']
    assert checkpoint['message_hub']['log_scalars']['train/loss'].current() == 0.25
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    # The second load reads torch.hub's cache, as MMEngine's loader does.
    assert osp.isfile(osp.join(torch.hub.get_dir(), 'checkpoints', 'good.pth'))


@pytest.mark.parametrize('prefix,url_table', [
    ('open-mmlab://', 'get_external_models'), ('openmmlab://', 'get_external_models'),
    ('torchvision://', 'get_torchvision_models'), ('modelzoo://', 'get_torchvision_models'),
    ('mmcls://', 'get_mmcls_models')])
def test_model_zoo_schemes_refuse_code_running_checkpoints(prefix, url_table, served, tmp_path):
    """The model-zoo schemes resolve a name to a URL (patched here to the local server)."""
    folder, base = served
    marker = str(tmp_path / 'marker')
    _save(_evil('os.system', marker), str(folder / 'evil.pth'))
    with mock.patch.object(mmengine_checkpoint, url_table,
                           return_value={'evil_model': f'{base}/evil.pth'}):
        with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
            CheckpointLoader.load_checkpoint(f'{prefix}evil_model', map_location='cpu')
    assert not osp.exists(marker)


def test_open_mmlab_local_file_is_loaded_safely(served, tmp_path):
    """open-mmlab:// names that are not URLs are files in MMENGINE_HOME."""
    marker = str(tmp_path / 'marker')
    home = tmp_path / 'mmengine_home'
    home.mkdir(exist_ok=True)
    _save(_evil('os.system', marker), str(home / 'evil.pth'))
    with mock.patch.object(mmengine_checkpoint, 'get_external_models',
                           return_value={'evil_model': 'evil.pth'}):
        with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
            CheckpointLoader.load_checkpoint('open-mmlab://evil_model')
    assert not osp.exists(marker)


def test_pavi_and_petrel_schemes_refuse_code_running_checkpoints(tmp_path, monkeypatch):
    """pavi:// and s3:// / petrel:// with stand-ins for their client packages."""
    marker = str(tmp_path / 'marker')
    evil = _save(_evil('os.system', marker), str(tmp_path / 'evil.pth'))

    class PaviModel:
        name = 'evil.pth'

        def download(self, destination):
            shutil.copy(evil, destination)

    pavi = types.ModuleType('pavi')
    pavi.modelcloud = types.SimpleNamespace(get=lambda path: PaviModel())
    petrel_client = types.ModuleType('petrel_client')
    petrel_client.client = types.SimpleNamespace(Client=lambda **kwargs: types.SimpleNamespace(
        Get=lambda path: open(evil, 'rb').read()))
    monkeypatch.setitem(sys.modules, 'pavi', pavi)
    monkeypatch.setitem(sys.modules, 'petrel_client', petrel_client)
    monkeypatch.setitem(sys.modules, 'petrel_client.client', petrel_client.client)
    for url in ('pavi://project/evil.pth', 's3://bucket/evil.pth', 'petrel://bucket/evil.pth',
                'cluster:s3://bucket/evil.pth'):
        with pytest.raises(UnsafeCheckpointError, match=re.escape(url)):
            CheckpointLoader.load_checkpoint(url)
    assert not osp.exists(marker)


def test_every_registered_scheme_loads_weights_only():
    """No scheme of MMEngine's CheckpointLoader is left with its own torch.load."""
    import mmdet  # noqa: F401  (the task packages could register schemes)
    import mmpretrain  # noqa: F401

    from mmxai.checkpoint import SAFE_SCHEME_LOADERS
    register_safe_loaders()  # after the task packages: they could add schemes
    assert set(SAFE_SCHEME_LOADERS) <= set(CheckpointLoader._schemes)
    for prefix, loader in CheckpointLoader._schemes.items():
        assert loader.__module__ == 'mmxai.checkpoint', (prefix, loader)


def test_a_scheme_mmxai_does_not_know_is_refused():
    CheckpointLoader.register_scheme('unknown-store://', lambda name, map_location: {},
                                     force=True)
    try:
        register_safe_loaders()
        with pytest.raises(UnsafeCheckpointError, match="'unknown-store://'"):
            CheckpointLoader.load_checkpoint('unknown-store://x.pth')
    finally:
        CheckpointLoader._schemes.pop('unknown-store://')


# ------------------------------------------------------ registration is explicit
def test_importing_mmxai_leaves_mmengine_loaders_alone():
    """Only register_safe_loaders() (tools, hooks) changes MMEngine; it is idempotent."""
    code = f'''
import importlib.util, sys
import mmdet, mmpretrain, torch
from mmengine.runner.checkpoint import CheckpointLoader
schemes = dict(CheckpointLoader._schemes)
allowed = list(torch.serialization.get_safe_globals())
assert all(f.__module__ == 'mmengine.runner.checkpoint' for f in schemes.values()), schemes
import mmxai, mmxai.apis, mmxai.checkpoint, mmxai.engine
for tool in ('explain', 'export', 'sanity_check', 'evaluate_explanations'):
    spec = importlib.util.spec_from_file_location(tool, {REPO!r} + f'/tools/{{tool}}.py')
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
assert dict(CheckpointLoader._schemes) == schemes, 'import changed the loaders'
assert list(torch.serialization.get_safe_globals()) == allowed, 'import changed the allow-list'
mmxai.checkpoint.register_safe_loaders()
after = dict(CheckpointLoader._schemes)
assert set(after) == set(schemes)
assert all(f.__module__ == 'mmxai.checkpoint' for f in after.values()), after
mmxai.checkpoint.register_safe_loaders()
assert dict(CheckpointLoader._schemes) == after, 'a second call changed the loaders'
print('checked')
'''
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), timeout=300)
    assert result.returncode == 0 and 'checked' in result.stdout, result.stderr[-3000:]


# ------------------------------------------------------------- URLs, mmxai's own load
def test_safe_load_checkpoint_by_url_equals_the_local_file(served):
    folder, base = served
    reference = _good_checkpoint(str(folder / 'good.pth'))
    checkpoint = safe_load_checkpoint(f'{base}/good.pth', map_location='cpu')
    for key, value in reference.state_dict().items():
        assert torch.equal(checkpoint['state_dict'][key], value), key
    assert checkpoint['meta'] == load_checkpoint_file(str(folder / 'good.pth'))['meta']
    assert osp.isfile(osp.join(os.environ['TORCH_HOME'], 'hub', 'checkpoints', 'good.pth'))


def test_only_plain_paths_are_local():
    for source in ('model.pth', '/abs/model.pth', 'dir/http:/x.pth', 'unknown-store://x.pth'):
        assert is_local_checkpoint(source), source
    for source in ('http://h/x.pth', 'https://h/x.pth', 'open-mmlab://resnet50',
                   'torchvision://resnet18', 's3://b/x.pth', 'cluster:s3://b/x.pth'):
        assert not is_local_checkpoint(source), source


def _download_error(url: str) -> str:
    with pytest.raises(CheckpointDownloadError) as error:
        safe_load_checkpoint(url)
    assert isinstance(error.value, UserInputError)
    message = str(error.value)
    assert '\n' not in message and url in message, message
    cache = osp.join(os.environ['TORCH_HOME'], 'hub', 'checkpoints')
    assert not osp.isdir(cache) or os.listdir(cache) == []  # nothing half-written is cached
    return message


def test_http_error_is_named(served):
    _, base = served
    assert _download_error(f'{base}/missing.pth').endswith(': HTTP 404 File not found')


def test_refused_connection_is_named(served):
    port = closed_port()
    message = _download_error(f'http://127.0.0.1:{port}/model.pth')
    assert message.endswith(f'connection refused by 127.0.0.1:{port}'), message


def test_silent_server_times_out(served, monkeypatch):
    monkeypatch.setattr(mmxai_checkpoint, 'DOWNLOAD_TIMEOUT_S', 0.3)
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(('127.0.0.1', 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        message = _download_error(f'http://127.0.0.1:{port}/model.pth')
    assert message.endswith(f'no answer from 127.0.0.1:{port} within 0.3 s'), message


class _TruncatingHandler(http.server.BaseHTTPRequestHandler):

    def do_GET(self):
        self.send_response(200)
        self.send_header('Content-Length', '1000')
        self.end_headers()
        self.wfile.write(b'x' * 10)

    def log_message(self, *args):
        pass


def test_truncated_download_is_not_cached(served):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _TruncatingHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs=dict(poll_interval=0.05),
                              daemon=True)
    thread.start()
    try:
        message = _download_error(f'http://127.0.0.1:{server.server_address[1]}/model.pth')
    finally:
        server.shutdown()
        server.server_close()
    assert message.endswith('the connection closed after 10 of 1000 bytes'), message


def _swin_v2_window_attention() -> torch.nn.Module:
    """A tiny MMPretrain SwinV2: it saves buffers its own load hook drops."""
    from mmpretrain.models.backbones import SwinTransformerV2
    arch = dict(embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                extra_norm_every_n_blocks=0)
    return SwinTransformerV2(arch=arch, img_size=64, window_size=4)


def test_a_checkpoint_the_model_wrote_loads_although_its_hook_drops_buffers(tmp_path):
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

    from mmxai.checkpoint import load_fitting_state_dict
    torch.manual_seed(0)
    written = _swin_v2_window_attention()
    keys = written.state_dict().keys()
    assert any('relative_coords_table' in key for key in keys)  # saved ...
    path = str(tmp_path / 'swinv2.pth')
    save_checkpoint(dict(state_dict=weights_to_cpu(written.state_dict())), path)
    weights = load_checkpoint_file(path)
    reloaded = _swin_v2_window_attention()
    with pytest.raises(RuntimeError, match='relative_coords_table'):  # ... and dropped on load
        reloaded.load_state_dict(weights['state_dict'])
    load_fitting_state_dict(reloaded, weights, path)
    for key, value in written.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[key], value)


def test_a_key_the_model_saves_but_the_checkpoint_lacks_is_refused():
    from mmxai.checkpoint import load_fitting_state_dict
    from mmxai.utils.errors import CheckpointMismatchError
    model = _swin_v2_window_attention()
    state = {key: value for key, value in model.state_dict().items()
             if 'relative_coords_table' not in key}
    with pytest.raises(CheckpointMismatchError, match='relative_coords_table'):
        load_fitting_state_dict(_swin_v2_window_attention(), state)
