"""What the command-line tools share: argument checks and config loading."""
import argparse
import os
from typing import Optional

from mmengine.config import Config


def check_files_exist(parser: argparse.ArgumentParser, **paths: Optional[str]) -> None:
    """Exit through ``parser.error`` with one line naming a missing file.

    Args:
        parser: The tool's argument parser.
        **paths: What each file is (``config=...``, ``checkpoint=...``).
    """
    for what, path in paths.items():
        if not path or not os.path.isfile(path):
            parser.error(f'{what} {path} does not exist')


def load_tool_config(path: str, cfg_options: Optional[dict] = None,
                     device: Optional[str] = None) -> Config:
    """Load a config, apply ``--cfg-options`` and honour ``--device cpu``.

    ``--device cpu`` hides the GPUs from torch (CUDA is initialised lazily, so
    this works as long as nothing has used CUDA yet); otherwise the Runner
    picks CUDA when available.
    """
    if device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg
