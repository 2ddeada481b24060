"""Version of mmxai and the checks of what it runs on."""
__version__ = '0.1.0'

MMCV_MINIMUM_VERSION = '2.0.0'
MMCV_MAXIMUM_VERSION = '2.2.0'


def check_mmcv() -> None:
    """Fail with one clear message if mmcv is missing, too new, or lacks its ops.

    Raises:
        ImportError: If mmcv is absent, outside ``[2.0.0, 2.2.0)``, or was
            installed without its compiled ops (``mmcv-lite``).
    """
    from mmengine.utils import digit_version
    try:
        import mmcv
    except ImportError as err:
        raise ImportError('mmxai needs mmcv>=2.0.0,<2.2.0 with its compiled ops; '
                          'run `make test` or see the README (Install).') from err
    version = digit_version(mmcv.__version__)
    if not digit_version(MMCV_MINIMUM_VERSION) <= version < digit_version(MMCV_MAXIMUM_VERSION):
        raise ImportError(f'mmcv=={mmcv.__version__} is installed, but mmxai (like mmdet 3.3) '
                          f'needs mmcv>={MMCV_MINIMUM_VERSION},<{MMCV_MAXIMUM_VERSION}.')
    try:
        from mmcv.ops import nms  # noqa: F401
    except (ImportError, OSError) as err:
        raise ImportError(f'mmcv=={mmcv.__version__} has no compiled ops ({err}); build mmcv '
                          'from source with MMCV_WITH_OPS=1 (see the README, Install).') from err
