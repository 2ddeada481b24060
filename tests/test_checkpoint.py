import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.runner import Runner

from mmxai.checkpoint import load_checkpoint_file
from mmxai.utils import UnsafeCheckpointError
from tests.helpers import DET_DEMO_CONFIG, load_config, set_data_root, train


class Call:
    """Pickles as ``func(*args)``: nests to chain calls inside one pickle."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __call__(self):  # pickle requires the reduce callable to be callable
        raise AssertionError

    def __reduce__(self):
        return self.func, self.args


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
    Runner.from_cfg(cfg).test()


@pytest.mark.parametrize('payload', ['os.system', 'getattr-to-eval'])
def test_code_running_checkpoint_is_refused_through_runner(payload, shapes_detection, tmp_path):
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
