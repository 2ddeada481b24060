"""Small helpers shared across mmxai: errors, atomic files, completion records."""
from .errors import (
    CascadeError,
    CheckpointDownloadError,
    CheckpointMismatchError,
    ExportedModelError,
    InputInsideOutputError,
    ReportInputError,
    TargetClassError,
    UnknownAlgorithmError,
    UnreadableImageError,
    UnsafeCheckpointError,
    UnsupportedExportError,
    UnsupportedModelError,
    UserInputError,
)
from .io import (
    TEMPORARY_PREFIX,
    atomic_write_bytes,
    atomic_write_json,
    is_temporary_name,
    safe_filename,
    sync_folder,
)
from .records import RECORD_NAME, finished_entry, record_path, write_record

__all__ = ['CascadeError', 'CheckpointDownloadError', 'CheckpointMismatchError',
           'ExportedModelError',
           'InputInsideOutputError', 'ReportInputError', 'TargetClassError',
           'UnknownAlgorithmError', 'UnreadableImageError', 'UnsupportedExportError',
           'UnsafeCheckpointError', 'UnsupportedModelError',
           'UserInputError', 'TEMPORARY_PREFIX', 'atomic_write_bytes', 'atomic_write_json',
           'is_temporary_name', 'safe_filename', 'sync_folder', 'RECORD_NAME', 'finished_entry',
           'record_path', 'write_record']
