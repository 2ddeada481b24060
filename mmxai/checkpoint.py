"""Loading MMEngine checkpoints with ``torch.load(weights_only=True)``.

MMEngine 0.10 calls ``torch.load`` without ``weights_only``; on torch >= 2.6 the
default is ``True`` and its own checkpoints fail to load because they pickle a
few non-tensor types (the message hub's ``HistoryBuffer``, numpy arrays and
scalars). Its URL loader goes through ``torch.hub.load_state_dict_from_url``,
whose default is ``weights_only=False``: any pickle runs. This module
allow-lists exactly the types checkpoints need and has a loader for every
scheme MMEngine registers (local files, ``http(s)://``, ``open-mmlab://``,
``torchvision://``, ``mmcls://``, ``pavi://``, ``s3://``/``petrel://``): each
fetches the bytes as MMEngine does and loads them with one function,
:func:`safe_torch_load`, which keeps ``weights_only=True`` and names the
checkpoint when it refuses one. Nothing here ever falls back to
``weights_only=False``.

mmxai's own loading (:func:`safe_load_checkpoint`) uses these loaders
directly. Importing mmxai changes nothing in MMEngine: the Runner's loading
(``load_from``, ``load_checkpoint``) goes through them only after
:func:`register_safe_loaders`, which mmxai's tools and hooks call.
"""
import http.client
import io
import os
import os.path as osp
import pickle
import re
import socket
import tempfile
from typing import IO, Any, Callable, Dict, List, Optional, Tuple, Union
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from .utils.errors import (
    CheckpointDownloadError,
    CheckpointMismatchError,
    UnsafeCheckpointError,
)

#: Attributes that ``HistoryBuffer`` pickles as ``getattr(HistoryBuffer, name)``.
HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


def restricted_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` while unpickling checkpoints.

    Resolves only the statistics methods of ``HistoryBuffer``: the real
    ``getattr`` would let a crafted pickle walk from any allowed object to
    ``builtins.eval``.
    """
    if obj is HistoryBuffer and name in HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise UnsafeCheckpointError(
        f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')


def _numpy_globals() -> List[Union[Callable, Tuple[Callable, str]]]:
    """Numpy objects in checkpoints, under their numpy 1.x and 2.x names."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    allowed: List[Union[Callable, Tuple[Callable, str]]] = [np.ndarray, np.dtype]
    for name in ('_reconstruct', 'scalar'):
        func = getattr(multiarray, name)
        for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            allowed.append((func, f'{module}.{name}'))
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return allowed


def checkpoint_safe_globals() -> List[Union[Callable, Tuple[Callable, str]]]:
    """Everything MMEngine/MMDetection/MMPretrain checkpoints need unpickled.

    Returns:
        list: Entries for ``torch.serialization.add_safe_globals``.
    """
    import codecs
    return [HistoryBuffer, (restricted_getattr, 'builtins.getattr'), codecs.encode,
            *_numpy_globals()]


def safe_torch_load(file: Union[str, IO[bytes]], source: str,
                    map_location: Optional[Any] = None) -> Any:
    """``torch.load(weights_only=True)`` with the allow-list: the one load of every scheme.

    Args:
        file (str | file object): A local path or a binary file object.
        source (str): What the user named (path or URL), for the error message.
        map_location: As for ``torch.load``.

    Returns:
        The unpickled checkpoint (usually a dict).

    Raises:
        UnsafeCheckpointError: If the pickle references anything not allowed
            (it would run code); the message names ``source``.
    """
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            return torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        raise UnsafeCheckpointError(
            f'Refused to load checkpoint {source}: its pickle references objects '
            f'that could run code, which mmxai does not allow ({reason})') from err


def load_checkpoint_file(filename: str, map_location: Optional[Any] = None) -> Any:
    """Load a local checkpoint with ``weights_only=True`` and the allow-list.

    Args:
        filename (str): Path of the checkpoint.
        map_location: As for ``torch.load``.

    Returns:
        The unpickled checkpoint (usually a dict).

    Raises:
        FileNotFoundError: If ``filename`` is not a file.
        UnsafeCheckpointError: If the pickle references anything not allowed
            (it would run code); the message names the file.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_torch_load(filename, filename, map_location)


# ------------------------------------------------------------------ schemes
# One loader per scheme MMEngine 0.10 registers in ``mmengine/runner/checkpoint.py``,
# named as MMEngine names it (``CheckpointLoader`` logs ``name[10:]`` as the
# backend). Each gets the bytes where MMEngine's gets them, then loads them
# with :func:`safe_torch_load`.


def load_from_local(filename: str, map_location: Optional[Any] = None) -> Any:
    """Scheme ``''`` (local files): :func:`load_checkpoint_file`."""
    return load_checkpoint_file(filename, map_location)


#: Seconds a download may wait for the server (to connect, or for the next bytes).
DOWNLOAD_TIMEOUT_S = 60.0


def _download_failure(url: str, error: BaseException) -> str:
    """Why ``url`` could not be fetched, in a few words."""
    host = urlparse(url).netloc
    if isinstance(error, HTTPError):
        return f'HTTP {error.code} {error.reason}'
    reason = error.reason if isinstance(error, URLError) else error
    if isinstance(reason, socket.gaierror):
        return f'host {urlparse(url).hostname} not found ({reason.strerror or reason})'
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f'no answer from {host} within {DOWNLOAD_TIMEOUT_S:g} s'
    if isinstance(reason, ConnectionRefusedError):
        return f'connection refused by {host}'
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def download_checkpoint(url: str, destination: str, progress: bool = False) -> None:
    """Download ``url`` to ``destination`` (written whole or not at all).

    Args:
        url (str): An ``http://`` or ``https://`` URL.
        destination (str): The file to write.
        progress (bool): Show a progress bar (torch.hub's).

    Raises:
        CheckpointDownloadError: If the server cannot be reached, answers
            with an HTTP error, stops answering for :data:`DOWNLOAD_TIMEOUT_S`
            or closes the connection early; the message names the URL and why.
    """
    from torch.hub import tqdm
    partial = None
    try:
        with urlopen(Request(url, headers={'User-Agent': 'mmxai'}),
                     timeout=DOWNLOAD_TIMEOUT_S) as response:
            length = response.headers.get('Content-Length')
            total = int(length) if length and length.isdigit() else None
            handle, partial = tempfile.mkstemp(prefix=f'.{osp.basename(destination)}.',
                                               suffix='.partial', dir=osp.dirname(destination))
            received = 0
            with os.fdopen(handle, 'wb') as file, tqdm(total=total, disable=not progress,
                                                      unit='B', unit_scale=True,
                                                      unit_divisor=1024) as bar:
                while chunk := response.read(1 << 16):
                    file.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise CheckpointDownloadError(f'cannot download checkpoint {url}: the connection '
                                          f'closed after {received} of {total} bytes')
        os.replace(partial, destination)
        partial = None
    except (OSError, http.client.HTTPException) as error:
        if isinstance(error, CheckpointDownloadError):
            raise
        raise CheckpointDownloadError(
            f'cannot download checkpoint {url}: {_download_failure(url, error)}') from error
    finally:
        if partial is not None and osp.exists(partial):
            os.remove(partial)


def _download(url: str, model_dir: Optional[str], progress: bool) -> str:
    """The cached copy of ``url``, downloaded first if needed.

    The cache is ``torch.hub``'s (``<hub dir>/checkpoints/<file name>``, under
    ``$TORCH_HOME``), as MMEngine's ``load_url``
    (``torch.hub.load_state_dict_from_url``) uses it.
    """
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached_file = osp.join(model_dir, osp.basename(urlparse(url).path))
    if not osp.exists(cached_file):
        download_checkpoint(url, cached_file, progress)
    return cached_file


def load_from_http(filename: str, map_location: Optional[Any] = None,
                   model_dir: Optional[str] = None, progress: bool = os.isatty(0)) -> Any:
    """Schemes ``http://``, ``https://``: download to the cache, then the safe load.

    As MMEngine's loader, only local rank 0 downloads in a distributed run;
    the other ranks wait, then read the cached file.

    Args:
        filename (str): The URL.
        map_location: As for ``torch.load``.
        model_dir (str, optional): Cache folder; defaults to torch.hub's.
        progress (bool): Show a download progress bar.

    Returns:
        The unpickled checkpoint.
    """
    rank, world_size = get_dist_info()
    cached_file = _download(filename, model_dir, progress) if rank == 0 else None
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            cached_file = _download(filename, model_dir, progress)
    return safe_torch_load(cached_file, filename, map_location)


def load_from_pavi(filename: str, map_location: Optional[Any] = None) -> Any:
    """Scheme ``pavi://``: download from PAVI's model cloud to a temporary folder."""
    try:
        from pavi import modelcloud
    except ImportError as err:
        raise ImportError('Please install pavi to load checkpoint from modelcloud.') from err
    model = modelcloud.get(filename[len('pavi://'):])
    with tempfile.TemporaryDirectory() as tmp_dir:
        downloaded_file = osp.join(tmp_dir, model.name)
        model.download(downloaded_file)
        return safe_torch_load(downloaded_file, filename, map_location)


def load_from_ceph(filename: str, map_location: Optional[Any] = None,
                   backend: str = 'petrel') -> Any:
    """Schemes ``s3://``, ``petrel://`` (optionally ``name:``-prefixed): bytes from the backend."""
    from mmengine.fileio import get_file_backend
    file_backend = get_file_backend(filename, backend_args={'backend': backend})
    with io.BytesIO(file_backend.get(filename)) as buffer:
        return safe_torch_load(buffer, filename, map_location)


def load_from_torchvision(filename: str, map_location: Optional[Any] = None) -> Any:
    """Schemes ``torchvision://``, ``modelzoo://``: torchvision's URL of the model."""
    model_name = filename.split('://', 1)[1]
    model_urls = mmengine_checkpoint.get_torchvision_models()
    return load_from_http(model_urls[model_name], map_location=map_location)


def load_from_openmmlab(filename: str, map_location: Optional[Any] = None) -> Any:
    """Schemes ``open-mmlab://``, ``openmmlab://``: OpenMMLab's URL (or file) of the model."""
    model_name = filename.split('://', 1)[1]
    model_name = mmengine_checkpoint.get_deprecated_model_names().get(model_name, model_name)
    model_url = mmengine_checkpoint.get_external_models()[model_name]
    if model_url.startswith(('http://', 'https://')):
        return load_from_http(model_url, map_location=map_location)
    return load_checkpoint_file(
        osp.join(mmengine_checkpoint._get_mmengine_home(), model_url), map_location)


def load_from_mmcls(filename: str, map_location: Optional[Any] = None) -> Any:
    """Scheme ``mmcls://``: MMClassification's URL, keys renamed as MMEngine does."""
    model_url = mmengine_checkpoint.get_mmcls_models()[filename[len('mmcls://'):]]
    checkpoint = load_from_http(model_url, map_location=map_location)
    return mmengine_checkpoint._process_mmcls_checkpoint(checkpoint)


#: Every prefix MMEngine 0.10 registers, and its weights-only loader.
SAFE_SCHEME_LOADERS: Dict[str, Callable[..., Any]] = {
    '': load_from_local,
    'http://': load_from_http,
    'https://': load_from_http,
    'pavi://': load_from_pavi,
    r'(\S+\:)?s3://': load_from_ceph,
    r'(\S+\:)?petrel://': load_from_ceph,
    'modelzoo://': load_from_torchvision,
    'torchvision://': load_from_torchvision,
    'open-mmlab://': load_from_openmmlab,
    'openmmlab://': load_from_openmmlab,
    'mmcls://': load_from_mmcls,
}


def _refusing_loader(prefix: str) -> Callable[..., Any]:
    """A loader for a scheme registered by someone else: mmxai cannot vouch for it."""

    def load_from_unknown_scheme(filename: str, map_location: Optional[Any] = None,
                                 *args: Any, **kwargs: Any) -> Any:
        raise UnsafeCheckpointError(
            f'Refused to load checkpoint {filename}: mmxai has no weights-only loader for '
            f'the scheme {prefix!r}; download it and pass the local file')

    return load_from_unknown_scheme


def _ordered(loaders: Dict[str, Callable[..., Any]]) -> Dict[str, Callable[..., Any]]:
    """Prefixes in the order ``CheckpointLoader`` tries them (reverse sorted)."""
    return dict(sorted(loaders.items(), key=lambda item: item[0], reverse=True))


def safe_loader_for(source: str) -> Callable[..., Any]:
    """The weights-only loader of a checkpoint path or URL, chosen as ``CheckpointLoader`` does.

    Args:
        source (str): A local path or anything MMEngine's ``CheckpointLoader``
            takes (``https://...``, ``open-mmlab://...``, ...).

    Returns:
        Callable: One of :data:`SAFE_SCHEME_LOADERS` (``load_from_local`` for
        a plain path).
    """
    for prefix, loader in _ordered(SAFE_SCHEME_LOADERS).items():
        if re.match(prefix, source) is not None:
            return loader
    return load_from_local  # pragma: no cover - the '' prefix matches everything


def is_local_checkpoint(source: str) -> bool:
    """Whether ``source`` names a local file (not a URL or another scheme)."""
    return safe_loader_for(source) is load_from_local


def safe_load_checkpoint(source: str, map_location: Optional[Any] = None) -> Any:
    """Load a checkpoint by path or URL with mmxai's weights-only loaders.

    Needs no :func:`register_safe_loaders`: MMEngine's ``CheckpointLoader``
    is not consulted.

    Args:
        source (str): A local path, or any URL or scheme MMEngine's
            ``CheckpointLoader`` takes; URLs are downloaded to torch.hub's
            cache (``$TORCH_HOME/hub/checkpoints``) first, as MMEngine does.
        map_location: As for ``torch.load``.

    Returns:
        The unpickled checkpoint (usually a dict).

    Raises:
        FileNotFoundError: For a local path that is not a file.
        CheckpointDownloadError: For a URL that cannot be fetched.
        UnsafeCheckpointError: If the pickle would run code.
    """
    return safe_loader_for(source)(source, map_location=map_location)


def register_safe_loaders() -> None:
    """Make MMEngine load every checkpoint with mmxai's weights-only loaders.

    A host-wide change, made only when called: it adds the checkpoint types
    to torch's weights-only allow-list and registers, with ``force=True``,
    mmxai's loader for every scheme of MMEngine's ``CheckpointLoader``, so
    ``Runner`` ``load_from``/``resume`` and ``mmengine.runner.load_checkpoint``
    load safely, by path or URL. A scheme registered by someone else that
    mmxai does not know (none in MMEngine 0.10) is refused rather than left to
    load pickles. mmxai's tools, :class:`~mmxai.engine.hooks.PrepareExplainHook`
    and :class:`~mmxai.engine.hooks.SafeCheckpointLoadingHook` call it;
    importing mmxai does not. Calling it again changes nothing.
    """
    torch.serialization.add_safe_globals(checkpoint_safe_globals())
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        if prefix not in SAFE_SCHEME_LOADERS and \
                getattr(loader, '__name__', '') != 'load_from_unknown_scheme':
            CheckpointLoader.register_scheme(prefix, _refusing_loader(prefix), force=True)
    for prefix, loader in SAFE_SCHEME_LOADERS.items():
        if CheckpointLoader._schemes.get(prefix) is not loader:
            CheckpointLoader.register_scheme(prefix, loader, force=True)


def state_dict_of(checkpoint: Any) -> Dict[str, Any]:
    """The weights of a loaded checkpoint, without a model wrapper's ``module.`` prefix.

    Args:
        checkpoint: A loaded checkpoint (a dict with ``state_dict``) or a state dict.

    Returns:
        dict: Parameter name -> tensor, as the unwrapped model names them.
    """
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else {}
    return {key[len('module.'):] if key.startswith('module.') else key: value
            for key, value in state.items()}


def checkpoint_class_names(checkpoint: Any) -> Optional[List[str]]:
    """The class names a checkpoint was trained with (``meta.dataset_meta.classes``), if any."""
    meta = (checkpoint.get('meta') if isinstance(checkpoint, dict) else None) or {}
    classes = (meta.get('dataset_meta') or {}).get('classes')
    return list(classes) if classes else None


def check_checkpoint_fits(model: torch.nn.Module, checkpoint: Any,
                          filename: Optional[str] = None) -> None:
    """Raise unless ``checkpoint`` has exactly the model's keys and shapes.

    The Runner loads checkpoints with ``strict=False``, which turns a
    checkpoint of another model into a warning and a partly random model; an
    explanation of a random model is worse than none.

    Args:
        model (nn.Module): The model the checkpoint is loaded into.
        checkpoint: The loaded checkpoint (a dict with ``state_dict``, or a
            state dict).
        filename (str, optional): Named in the error message.

    Raises:
        CheckpointMismatchError: On missing keys, unexpected keys or shapes
            that differ; the message names the file and the first offenders.
    """
    state = state_dict_of(checkpoint)
    expected = model.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    mismatched = sorted(key for key in expected.keys() & state.keys()
                        if tuple(expected[key].shape) != tuple(getattr(state[key], 'shape', ())))
    problems = []
    for label, keys in (('missing keys', missing), ('unexpected keys', unexpected),
                        ('shape mismatches', mismatched)):
        if keys:
            shown = ', '.join(keys[:3]) + (', ...' if len(keys) > 3 else '')
            problems.append(f'{len(keys)} {label} ({shown})')
    if problems:
        raise CheckpointMismatchError(
            f'checkpoint {filename or "<in memory>"} does not fit '
            f'{type(model).__name__}: {"; ".join(problems)}. Is it a checkpoint of this config?')


def load_fitting_state_dict(model: torch.nn.Module, checkpoint: Any,
                            filename: Optional[str] = None) -> None:
    """Check that ``checkpoint`` fits ``model`` exactly, then load it.

    The keys are checked against what the model itself saves
    (:func:`check_checkpoint_fits`, ``model.state_dict()``). Some models drop
    saved buffers in their own load hooks and rebuild them (SwinV2 deletes
    ``relative_coords_table``), so a strict ``load_state_dict`` would refuse
    the model's own checkpoint; the load therefore accepts exactly the keys
    that the checkpoint held and the model's hooks removed.

    Args:
        model (nn.Module): The model the checkpoint is loaded into.
        checkpoint: The loaded checkpoint (a dict with ``state_dict``, or a
            state dict).
        filename (str, optional): Named in the error message.

    Raises:
        CheckpointMismatchError: If the checkpoint does not fit (see
            :func:`check_checkpoint_fits`), or the model's own load left a
            key it saves without a value.
    """
    check_checkpoint_fits(model, checkpoint, filename)
    state = state_dict_of(checkpoint)
    result = model.load_state_dict(state, strict=False)
    unfilled = sorted(key for key in result.missing_keys if key not in state)
    if unfilled or result.unexpected_keys:
        raise CheckpointMismatchError(
            f'checkpoint {filename or "<in memory>"} does not load into '
            f'{type(model).__name__}: missing {unfilled[:3]}, unexpected '
            f'{sorted(result.unexpected_keys)[:3]}')
