"""What the command-line tools share: argument checks, config loading, errors."""
import argparse
import logging
import os
import os.path as osp
import tempfile
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence, TypeVar

import torch
from mmengine.config import Config

from ..checkpoint import is_local_checkpoint
from ..datasets import find_images
from ..deploy import is_exported_model
from ..utils import UserInputError

if TYPE_CHECKING:
    from mmengine.runner import Runner

T = TypeVar('T')


def check_files_exist(parser: argparse.ArgumentParser, **paths: Optional[str]) -> None:
    """Exit through ``parser.error`` with one line naming a missing file.

    Args:
        parser: The tool's argument parser.
        **paths: What each file is (``config=...``, ``checkpoint=...``).
    """
    for what, path in paths.items():
        if not path or not os.path.isfile(path):
            parser.error(f'{what} {path} does not exist')


def check_checkpoint(parser: argparse.ArgumentParser, checkpoint: Optional[str]) -> None:
    """Exit with one line if a local checkpoint is missing; URLs are checked when fetched.

    A checkpoint may be anything MMEngine's ``CheckpointLoader`` takes
    (``https://...``, ``open-mmlab://...``, ...); only a local path can "not
    exist". A URL that cannot be fetched is a
    :class:`~mmxai.utils.CheckpointDownloadError` when it is loaded. An
    exported model (``.onnx``, ``.xml``) must be a local file.

    Args:
        parser: The tool's argument parser.
        checkpoint: The checkpoint the user gave.
    """
    if checkpoint and not is_local_checkpoint(checkpoint):
        if is_exported_model(checkpoint):
            parser.error(f'exported model {checkpoint} must be a local file (download it and '
                         'its .bin, if any, first)')
        return
    check_files_exist(parser, checkpoint=checkpoint)


def check_inputs(parser: argparse.ArgumentParser, inputs: Sequence[str],
                 output: Optional[str] = None) -> None:
    """Exit with one line if the inputs are missing or hold no usable image.

    Args:
        parser: The tool's argument parser.
        inputs: Image folders and files.
        output: The output folder: left out of the search when inside an
            input folder; an input folder inside it is an error.
    """
    try:
        images, skipped = find_images(inputs, exclude=[output] if output else ())
    except (FileNotFoundError, UserInputError) as error:
        parser.error(str(error))
    if not images:
        detail = f' ({len(skipped)} unusable, e.g. {skipped[0]["image"]}: ' \
                 f'{skipped[0]["reason"]})' if skipped else ''
        parser.error(f'no images found in {" ".join(inputs)}{detail}')


def check_output_dir(parser: argparse.ArgumentParser, path: str) -> None:
    """Create the output folder, or exit with one line saying why it cannot be written."""
    if osp.exists(path) and not osp.isdir(path):
        parser.error(f'output {path} is a file, not a folder')
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        parser.error(f'output folder {path} cannot be written ({error.strerror or error})')


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


def setup_distributed(cfg: Config, launcher: str) -> None:
    """Let ``--launcher pytorch`` (torchrun) run on CPUs too.

    On GPUs MMEngine's launcher sets everything up (NCCL). Without CUDA it
    would call ``torch.cuda.set_device`` and fail, so the gloo process group
    is started here and the model wrapper told to use no device ids.
    """
    cfg.launcher = launcher
    if launcher != 'pytorch' or torch.cuda.is_available():
        return
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend='gloo')
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None)


def teardown_distributed() -> None:
    """Close the process group before exit.

    Left to interpreter shutdown, the gloo group's threads are destroyed
    while still joinable and every process aborts ("terminate called without
    an active exception") after its work is done, failing the launcher.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def log_every_rank(runner: 'Runner') -> None:
    """Give processes other than rank 0 a log file too (``<timestamp>_rank<r>.log``).

    MMEngine's Runner writes only rank 0's log unless the log level is DEBUG;
    each rank's share of the images and its progress belong in the logs.
    """
    if runner.rank == 0:
        return
    path = osp.join(runner.log_dir, f'{runner.timestamp}_rank{runner.rank}.log')
    handler = logging.FileHandler(path, mode='a')
    handler.setFormatter(logging.Formatter('%(asctime)s - %(name)s - %(levelname)s - '
                                           '%(message)s', '%m/%d %H:%M:%S'))
    handler.setLevel(logging.INFO)
    runner.logger.addHandler(handler)


def exit_on_user_error(parser: argparse.ArgumentParser, run: Callable[[], T]) -> T:
    """Run ``run()``; a :class:`~mmxai.utils.UserInputError` exits in one line."""
    try:
        return run()
    except UserInputError as error:
        message = str(error).strip().splitlines()
        parser.exit(2, f'{parser.prog}: error: {message[0] if message else type(error).__name__}\n')


def process_batches(dataloader: Iterable, process: Callable[[Any], Any], verb: str) -> None:
    """Feed every batch to ``process``, with a one-line progress count.

    Args:
        dataloader (Iterable): Batches (with a length).
        process (Callable): Called on each batch.
        verb (str): What is done, for the progress line (``'evaluated'``).
    """
    for index, data in enumerate(dataloader):
        process(data)
        print(f'\r{verb} {index + 1}/{len(dataloader)} batches', end='', flush=True)
    print()
