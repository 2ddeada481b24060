"""Version of mmxai and the checks of what it runs on."""
import re

__version__ = '0.1.0'

MMCV_MINIMUM_VERSION = '2.0.0'
MMCV_MAXIMUM_VERSION = '2.2.0'
#: The oldest torch mmxai loads checkpoints safely with: ``torch.serialization.safe_globals``
#: (2.5) taking ``(callable, name)`` entries (2.6), which the allow-list needs for its
#: restricted ``builtins.getattr`` and numpy's two module names; from 2.6 on ``torch.load``
#: is also weights-only by default for code that calls it directly.
TORCH_MINIMUM_VERSION = (2, 6)


def check_torch() -> None:
    """Fail with one clear message if torch is older than :data:`TORCH_MINIMUM_VERSION`.

    Only the release's major and minor numbers count, so local and
    pre-release builds of a supported release (``2.6.0+cpu``, ``2.6.0a0+git...``)
    pass.

    Raises:
        ImportError: If torch is missing or too old.
    """
    try:
        import torch
    except ImportError as err:
        raise ImportError('mmxai needs torch>={}.{}; install torch first.'.format(
            *TORCH_MINIMUM_VERSION)) from err
    match = re.match(r'(\d+)\.(\d+)', torch.__version__)
    if match is None or tuple(map(int, match.groups())) < TORCH_MINIMUM_VERSION:
        raise ImportError(
            'torch=={} is installed, but mmxai needs torch>={}.{} to load checkpoints safely '
            '(weights-only with an allow-list: torch.serialization.safe_globals with '
            '(callable, name) entries).'.format(torch.__version__, *TORCH_MINIMUM_VERSION))


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
