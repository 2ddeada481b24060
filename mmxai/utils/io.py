"""File writing that never leaves half-written files behind."""
import json
import os
import re
import secrets
from typing import Any

#: Name prefix of the files mmxai is writing; never a finished output, never a user's file.
TEMPORARY_PREFIX = '.tmp-mmxai-'
#: A temporary name exactly as :func:`temporary_path` makes it.
_TEMPORARY_NAME = re.compile(re.escape(TEMPORARY_PREFIX) + r'[0-9a-f]{12}(-|$)')
#: Longest file name most file systems take (bytes).
_NAME_MAX = 255


def temporary_path(path: str) -> str:
    """A fresh temporary name next to ``path``: ``.tmp-mmxai-<12 hex digits>-<name>``."""
    folder, name = os.path.split(path)
    temporary = f'{TEMPORARY_PREFIX}{secrets.token_hex(6)}'
    if len(os.fsencode(f'{temporary}-{name}')) <= _NAME_MAX:
        temporary = f'{temporary}-{name}'
    return os.path.join(folder, temporary)


def is_temporary_name(name: str) -> bool:
    """Whether a file name is one :func:`temporary_path` makes (a write that never finished)."""
    return _TEMPORARY_NAME.match(name) is not None


def sync_folder(folder: str) -> None:
    """Make the names in ``folder`` (a rename into it) durable; no-op on Windows."""
    if os.name == 'nt':
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def atomic_write_bytes(path: str, data: bytes, fsync: bool = False,
                       fsync_folder: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    The file gets the permissions any new file of the user gets (``0o666``
    less the umask), not the ``0o600`` of :func:`tempfile.mkstemp`.

    Args:
        path (str): The file to write; its folder is created if needed.
        data (bytes): Its whole content.
        fsync (bool): Flush the content to the disk before the rename, so the
            name never refers to content that a power loss could lose.
        fsync_folder (bool): Also flush the folder after the rename, so the
            new name itself survives a power loss.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0)
    for attempt in range(3):
        tmp = temporary_path(os.path.join(folder, os.path.basename(path)))
        try:
            handle = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            if attempt == 2:
                raise
    try:
        with os.fdopen(handle, 'wb') as file:
            file.write(data)
            if fsync:
                file.flush()
                os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if fsync_folder:
        sync_folder(folder)


def atomic_write_json(path: str, obj: Any, fsync: bool = False,
                      fsync_folder: bool = False) -> None:
    """Write ``obj`` as indented JSON, atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, json.dumps(obj, indent=2, ensure_ascii=False).encode('utf-8'),
                       fsync=fsync, fsync_folder=fsync_folder)


def safe_filename(text: str) -> str:
    """``text`` with every character outside letters, digits, ``-`` and ``.`` as ``_``."""
    return re.sub(r'[^\w\-.]+', '_', text, flags=re.UNICODE).strip('_') or '_'
