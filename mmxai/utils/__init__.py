"""Small helpers shared across mmxai: errors, atomic files, completion records."""
from .errors import (
    CheckpointMismatchError,
    TargetClassError,
    UnknownAlgorithmError,
    UnsafeCheckpointError,
    UnsupportedModelError,
    UserInputError,
)
from .io import TEMPORARY_PREFIX, atomic_write_bytes, atomic_write_json, safe_filename
from .records import RECORD_NAME, finished_entry, record_path, write_record

__all__ = ['CheckpointMismatchError', 'TargetClassError', 'UnknownAlgorithmError',
           'UnsafeCheckpointError', 'UnsupportedModelError', 'UserInputError',
           'TEMPORARY_PREFIX', 'atomic_write_bytes', 'atomic_write_json', 'safe_filename',
           'RECORD_NAME', 'finished_entry', 'record_path', 'write_record']
