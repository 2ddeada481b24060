"""File writing that never leaves half-written files behind."""
import json
import os
import re
import tempfile
from typing import Any

#: Name prefix of files being written; never a finished output.
TEMPORARY_PREFIX = '.tmp-'


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=TEMPORARY_PREFIX,
                                   suffix=os.path.basename(path))
    try:
        with os.fdopen(handle, 'wb') as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_bytes(path, json.dumps(obj, indent=2, ensure_ascii=False).encode('utf-8'))


def safe_filename(text: str) -> str:
    """``text`` with every character outside letters, digits, ``-`` and ``.`` as ``_``."""
    return re.sub(r'[^\w\-.]+', '_', text, flags=re.UNICODE).strip('_') or '_'
