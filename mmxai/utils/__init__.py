"""Small helpers shared across mmxai."""
from .errors import TargetClassError, UnknownAlgorithmError, UserInputError
from .io import TEMPORARY_PREFIX, atomic_write_bytes, atomic_write_json, safe_filename
from .records import RECORD_NAME, finished_entry, record_path, write_record

__all__ = ['TargetClassError', 'UnknownAlgorithmError', 'UserInputError', 'TEMPORARY_PREFIX',
           'atomic_write_bytes', 'atomic_write_json', 'safe_filename', 'RECORD_NAME',
           'finished_entry', 'record_path', 'write_record']
