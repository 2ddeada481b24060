"""Per-image completion records: what lets an interrupted run resume."""
import json
import os.path as osp
from typing import Any, Dict, Optional

from .io import atomic_write_json

#: Written last, atomically, in an image's output folder: its files are complete.
RECORD_NAME = 'explanation.json'


def record_path(output_dir: str, output_stem: str) -> str:
    """Where the record of the image whose files go to ``output_dir/output_stem/`` is."""
    return osp.join(output_dir, output_stem, RECORD_NAME)


def write_record(path: str, run_id: Optional[str], source: Dict[str, int],
                 entry: Dict[str, Any]) -> None:
    """Mark an image as explained.

    Args:
        path (str): From :func:`record_path`.
        run_id (str, optional): Identifies the settings it was explained with.
        source (dict): Size and modification time of the input file.
        entry (dict): Its manifest entry.
    """
    atomic_write_json(path, dict(run_id=run_id, source=source, entry=entry))


def finished_entry(path: str, run_id: Optional[str],
                   source: Dict[str, int]) -> Optional[Dict[str, Any]]:
    """The manifest entry of an image explained before with the same settings.

    Returns:
        dict | None: None if there is no valid record, or it was written with
        other settings (``run_id``) or for another version of the file.
    """
    if run_id is None or not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as file:
            record = json.load(file)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get('run_id') != run_id or \
            record.get('source') != source:
        return None
    return record.get('entry')
