"""Loading MMEngine checkpoints with ``torch.load(weights_only=True)``.

MMEngine 0.10 calls ``torch.load`` without ``weights_only``; on torch >= 2.6 the
default is ``True`` and its own checkpoints fail to load because they pickle a
few non-tensor types (the message hub's ``HistoryBuffer``, numpy arrays and
scalars). This module allow-lists exactly those types and installs a loader for
local files that keeps ``weights_only=True`` and names the file when it refuses
one. Nothing here ever falls back to ``weights_only=False``.
"""
import os.path as osp
import pickle
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from .utils.errors import CheckpointMismatchError, UnsafeCheckpointError

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


def supports_safe_globals() -> bool:
    """Whether this torch has ``add_safe_globals`` (torch >= 2.4)."""
    return hasattr(torch.serialization, 'add_safe_globals')


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
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        raise UnsafeCheckpointError(
            f'Refused to load checkpoint {filename}: its pickle references objects '
            f'that could run code, which mmxai does not allow ({reason})') from err


def register_safe_checkpoint_loading() -> None:
    """Allow-list checkpoint types and route local files to the safe loader.

    Called when ``mmxai`` is imported, so a config's ``custom_imports`` makes
    ``runner.test()`` (and MMDetection's ``tools/test.py``) load checkpoints
    safely. On torch < 2.4 ``weights_only`` is not the default and this does
    nothing.
    """
    if not supports_safe_globals():  # pragma: no cover - old torch
        return
    torch.serialization.add_safe_globals(checkpoint_safe_globals())
    CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file, force=True)


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
