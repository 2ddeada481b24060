from unittest import mock

import mmcv
import pytest

from mmxai.version import check_mmcv


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
