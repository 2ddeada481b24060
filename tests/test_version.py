import os
import re
import subprocess
import sys
from unittest import mock

import mmcv
import pytest
import torch

from mmxai.version import check_mmcv, check_torch
from tests.helpers import REPO


def test_installed_mmcv_passes():
    check_mmcv()


@pytest.mark.parametrize('version', ['2.2.0', '1.7.1'])
def test_mmcv_outside_the_range_is_refused_with_the_range(version):
    with mock.patch.object(mmcv, '__version__', version):
        with pytest.raises(ImportError, match=rf'mmcv=={version} .*>=2\.0\.0,<2\.2\.0'):
            check_mmcv()


def test_mmcv_without_ops_is_refused():
    with mock.patch.dict('sys.modules', {'mmcv.ops': None}):
        with pytest.raises(ImportError, match='no compiled ops'):
            check_mmcv()


def test_installed_torch_passes():
    check_torch()


@pytest.mark.parametrize('version', ['2.6.0', '2.6.0+cpu', '2.6.0a0+gitecf3bae', '2.14.1', '3.0'])
def test_supported_torch_builds_pass(version):
    with mock.patch.object(torch, '__version__', version):
        check_torch()


@pytest.mark.parametrize('version', ['2.5.1', '2.4.0+cu121', '1.8.0'])
def test_torch_older_than_the_floor_is_refused_with_the_floor(version):
    with mock.patch.object(torch, '__version__', version):
        with pytest.raises(ImportError, match=rf'torch=={re.escape(version)} .*torch>=2\.6'):
            check_torch()


def test_old_torch_is_refused_at_import_in_one_line():
    """`import mmxai` under an old torch stops with one line naming both versions."""
    code = "import torch; torch.__version__ = '2.5.1'; import mmxai"
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=REPO), timeout=300)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r'ImportError: torch==2\.5\.1 is installed, but mmxai needs torch>=2\.6 '
                        r'.*\.', last), result.stderr[-2000:]
