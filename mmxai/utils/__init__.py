"""Small helpers shared across mmxai."""
from .io import atomic_write_bytes, atomic_write_json, safe_filename

__all__ = ['atomic_write_bytes', 'atomic_write_json', 'safe_filename']
