"""Per-image completion records: what lets an interrupted run resume."""
import json
import os
import os.path as osp
import stat
from typing import Any, Dict, Optional

from .io import atomic_write_json

#: Written last, atomically, in an image's output folder: its files are complete.
RECORD_NAME = 'explanation.json'
#: Keys of a manifest explanation that name a file written for it.
FILE_KEYS = ('saliency_map', 'overlay', 'raw')


def record_path(output_dir: str, output_stem: str) -> str:
    """Where the record of the image whose files go to ``output_dir/output_stem/`` is."""
    return osp.join(output_dir, output_stem, RECORD_NAME)


def write_record(path: str, run_id: Optional[str], source: Dict[str, Any],
                 entry: Dict[str, Any]) -> None:
    """Mark an image as explained; the record is on the disk before it has its name.

    Args:
        path (str): From :func:`record_path`.
        run_id (str, optional): Identifies the settings it was explained with.
        source (dict): Path, size and modification time of the input file.
        entry (dict): Its manifest entry.
    """
    atomic_write_json(path, dict(run_id=run_id, source=source, entry=entry), fsync=True)


def _files_are_there(output_dir: str, entry: Any) -> bool:
    """Whether every file an entry lists exists below ``output_dir`` and is not empty.

    A power loss can keep a record (flushed) but lose the maps written just
    before it (not flushed): they are then missing or empty.
    """
    explanations = entry.get('explanations') if isinstance(entry, dict) else None
    if not isinstance(explanations, list):
        return False
    for explanation in explanations:
        if not isinstance(explanation, dict):
            return False
        for key in FILE_KEYS:
            if key not in explanation:
                continue
            try:
                info = os.stat(osp.join(output_dir, explanation[key]))
            except (OSError, TypeError):
                return False
            if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
                return False
    return True


def finished_entry(output_dir: str, output_stem: str, run_id: Optional[str],
                   source: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The manifest entry of an image explained before with the same settings.

    Args:
        output_dir (str): Output root of the earlier run.
        output_stem (str): The image's output folder below it.
        run_id (str, optional): Identifies the settings of this run.
        source (dict): Path, size and modification time of the input file now.

    Returns:
        dict | None: None if there is no valid record, it was written with
        other settings (``run_id``) or for another file or version of it
        (``source``), or a file it lists is missing or empty.
    """
    path = record_path(output_dir, output_stem)
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
    entry = record.get('entry')
    return entry if _files_are_there(output_dir, entry) else None
