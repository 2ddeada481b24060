"""Unlabeled images from folders, single files or lists of paths."""
import errno
import json
import os
import os.path as osp
from functools import partial
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset

from ..registry import DATASETS, FUNCTIONS
from ..utils import InputInsideOutputError, UserInputError, finished_entry
from .image_io import describe_failure, stat_signature
from .output_names import distinguishing_suffixes, output_stems

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
#: Image formats users may expect to work: reported as skipped, not ignored.
UNSUPPORTED_EXTENSIONS = ('.gif', '.heic', '.heif', '.avif', '.svg', '.psd', '.jp2', '.ico',
                          '.dng', '.cr2', '.nef', '.arw')
#: Key of a data sample that stands for an input that could not be read.
SKIPPED = 'skipped'


class ImageList(NamedTuple):
    """What :func:`find_images` found.

    Attributes:
        images: ``img_path``, ``rel_path`` (path below the output root) and
            ``output_stem`` (its output folder) of every image, sorted.
        skipped: ``image`` and ``reason`` of every file found but unusable
            (unsupported format, broken symlink, symlink loop).
    """

    images: List[Dict[str, str]]
    skipped: List[Dict[str, str]]


def _link_problem(path: str) -> Optional[str]:
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return 'symlink loop'
        return f'cannot be read ({error.strerror})'
    return None


def _split_inputs(inputs: Union[str, Sequence[str]]) -> List[str]:
    """The input paths, OTX's ``"a/,b/"`` split, each file or folder once."""
    paths, seen = [], set()
    for item in ([inputs] if isinstance(inputs, str) else inputs):
        # OTX accepted "dir1,dir2"; split only when the whole string is no path.
        for part in item.split(',') if ',' in item and not osp.exists(item) else [item]:
            if part and osp.realpath(part) not in seen:
                seen.add(osp.realpath(part))
                paths.append(part)
    return paths


def _inside(path: str, folders: Sequence[str]) -> Optional[str]:
    """The folder of ``folders`` (real paths) that ``path`` is or lies in, if any."""
    real = osp.realpath(path)
    return next((folder for folder in folders
                 if real == folder or real.startswith(osp.join(folder, ''))), None)


def find_images(inputs: Union[str, Sequence[str]],
                extensions: Sequence[str] = IMAGE_EXTENSIONS,
                exclude: Sequence[str] = ()) -> ImageList:
    """List images with the path each keeps below the output root.

    A folder is searched recursively, following symlinks once (a link back
    to a folder already searched is reported, not followed), and its images
    keep their path relative to it; a file keeps its name. With several
    inputs, each image's path starts with the fewest trailing components of
    its input's path that tell the inputs apart (``imgs/`` for one folder
    ``imgs``; ``p/imgs/`` and ``q/imgs/`` for two), so two inputs never give
    an image the same path; a file or folder given twice, or found through
    two inputs, is listed once. Output folders come from
    :func:`~mmxai.datasets.output_names.output_stems` (``cat_jpg/`` and
    ``cat_png/`` for ``cat.jpg`` and ``cat.png``): distinct by construction.

    Args:
        inputs (str | Sequence[str]): Folders and/or image files; an item
            that is no existing path is split at commas (``"a/,b/"``).
        extensions (Sequence[str]): File name endings counted as images.
        exclude (Sequence[str]): Folders left out of the search (the output
            folder, when it lies inside an input folder).

    Returns:
        ImageList: The images, and the files found but unusable.

    Raises:
        FileNotFoundError: If an input does not exist.
        InputInsideOutputError: If an input folder is, or lies inside, a
            folder of ``exclude``.
    """
    extensions = tuple(e.lower() for e in extensions)
    paths = _split_inputs(inputs)
    excluded = [osp.realpath(folder) for folder in exclude]
    for path in paths:
        if not (osp.isdir(path) or osp.isfile(path) or osp.islink(path)):
            raise FileNotFoundError(f'input {path} does not exist')
        output = _inside(path, excluded) if osp.isdir(path) else None
        if output:
            raise InputInsideOutputError(
                f'input folder {path} is inside the output folder {output}: the maps written '
                'there would be read as images; choose an output folder outside the input')
    labels = distinguishing_suffixes(paths) if len(paths) > 1 else [''] * len(paths)
    found: List[Dict[str, str]] = []
    skipped: List[Dict[str, str]] = []
    seen = set()

    def add(full: str, rel_path: str) -> None:
        if osp.abspath(full) in seen:  # reached through two inputs
            return
        seen.add(osp.abspath(full))
        name = full.lower()
        if name.endswith(UNSUPPORTED_EXTENSIONS):
            reason = f'unsupported format {osp.splitext(name)[1]} (supported: ' \
                     f'{" ".join(extensions)})'
            skipped.append(dict(image=full, rel_path=rel_path, reason=reason))
        elif name.endswith(extensions):
            problem = _link_problem(full)
            if problem:
                skipped.append(dict(image=full, rel_path=rel_path, reason=problem))
            else:
                found.append(dict(img_path=full, rel_path=rel_path))

    for path, label in zip(paths, labels):
        if osp.isdir(path):
            searched = set()
            for folder, subfolders, files in os.walk(path, followlinks=True):
                searched.add(osp.realpath(folder))
                for sub in list(subfolders):
                    full = osp.join(folder, sub)
                    if osp.realpath(full) in excluded:
                        subfolders.remove(sub)
                    elif osp.realpath(full) in searched:
                        subfolders.remove(sub)
                        skipped.append(dict(image=full,
                                            rel_path=osp.join(label, osp.relpath(full, path)),
                                            reason='symlink to a folder already searched (a loop)'))
                subfolders.sort()
                for name in sorted(files):
                    full = osp.join(folder, name)
                    add(full, osp.join(label, osp.relpath(full, path)))
        else:
            add(path, label or osp.basename(path))
    for image, stem in zip(found, output_stems([image['rel_path'] for image in found])):
        image['output_stem'] = stem
    return ImageList(found, skipped)


@DATASETS.register_module()
class ImageFolderDataset(BaseDataset):
    """Images to explain, without annotations, robust to broken files.

    A file the pipeline cannot load (empty, truncated, not an image, ...)
    does not stop the run: its sample is replaced by ``{'skipped': {image,
    rel_path, reason}}``, which :func:`collate_skipping_unreadable` takes
    out of the batch before the model. Files found but unusable are in
    :attr:`skipped`.

    With ``resume_dir`` and ``run_id``, images that already have a complete
    record there (same settings, the same file unchanged: path, size and
    time, and every file the record lists present and not empty) are left
    out of the data list; their manifest entries are in :attr:`finished`.

    Args:
        inputs (str | Sequence[str]): Folders (searched recursively) and/or
            image files.
        pipeline (Sequence[dict]): The model's test pipeline without
            annotation loading.
        metainfo (dict, optional): ``classes`` (and ``palette``) of the model.
        extensions (Sequence[str]): File name endings counted as images.
        resume_dir (str, optional): Output root of the run to resume.
        run_id (str, optional): Identifies the explain settings.
        exclude (Sequence[str]): Folders left out of the search (the output
            folder); an input folder inside one is an error.
        target_boxes (str, optional): A JSON file of boxes to explain per
            image (see :func:`load_target_boxes`); each image gets its list
            (maybe empty) as ``target_boxes``.
    """

    def __init__(self,
                 inputs: Union[str, Sequence[str]],
                 pipeline: Sequence[dict] = (),
                 metainfo: Optional[dict] = None,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS,
                 resume_dir: Optional[str] = None,
                 run_id: Optional[str] = None,
                 exclude: Sequence[str] = (),
                 target_boxes: Optional[str] = None,
                 **kwargs) -> None:
        self.inputs = inputs
        self.extensions = tuple(e.lower() for e in extensions)
        self.resume_dir = resume_dir
        self.run_id = run_id
        self.exclude = tuple(exclude)
        self.target_boxes = target_boxes
        self.skipped: List[Dict[str, str]] = []
        self.finished: List[Dict[str, Any]] = []
        super().__init__(ann_file='', metainfo=metainfo, pipeline=list(pipeline),
                         test_mode=True, **kwargs)

    def load_data_list(self) -> List[dict]:
        images, self.skipped = find_images(self.inputs, self.extensions, self.exclude)
        if not images and not self.skipped:
            raise ValueError(f'no images ({", ".join(self.extensions)}) found in {self.inputs}')
        if self.target_boxes:
            boxes = load_target_boxes(self.target_boxes, images)
            for image, image_boxes in zip(images, boxes):
                image['target_boxes'] = image_boxes
        todo = []
        for image in images:
            entry = None
            if self.resume_dir:
                entry = finished_entry(self.resume_dir, image['output_stem'], self.run_id,
                                       stat_signature(image['img_path']))
            if entry is None:
                todo.append(image)
            else:
                self.finished.append(entry)
        for index, image in enumerate(todo):
            image.update(img_id=index, sample_idx=index)
        return todo

    def _serialize_data(self) -> Tuple[np.ndarray, np.ndarray]:
        if not self.data_list:  # everything was finished before: MMEngine cannot pack nothing
            return np.zeros(0, np.uint8), np.zeros(0, np.int64)
        return super()._serialize_data()

    def prepare_data(self, idx: int) -> Any:
        """The pipeline's output, or a ``skipped`` sample saying why it failed."""
        try:
            return super().prepare_data(idx)
        except Exception as error:  # one broken file must not stop the run
            info = self.get_data_info(idx)
            return {SKIPPED: dict(image=info['img_path'], rel_path=info['rel_path'],
                                  reason=describe_failure(error, info['img_path']))}


@FUNCTIONS.register_module()
def collate_skipping_unreadable(data_batch: Sequence[Any],
                                collate_fn: Optional[Union[dict, Callable]] = None) -> dict:
    """Collate the readable samples; list the skipped ones under ``'skipped'``.

    Args:
        data_batch (Sequence): Samples from :class:`ImageFolderDataset`.
        collate_fn (dict | Callable, optional): The config's own collate
            function (``dict(type='pseudo_collate')`` by default).

    Returns:
        dict: What ``collate_fn`` returns for the readable samples (empty
        ``inputs`` and ``data_samples`` if none) plus ``'skipped'``.
    """
    if collate_fn is None or isinstance(collate_fn, dict):
        cfg = dict(collate_fn or dict(type='pseudo_collate'))
        collate_fn = partial(FUNCTIONS.get(cfg.pop('type')), **cfg)
    readable = [sample for sample in data_batch if SKIPPED not in sample]
    batch = collate_fn(readable) if readable else dict(inputs=[], data_samples=[])
    batch[SKIPPED] = [sample[SKIPPED] for sample in data_batch if SKIPPED in sample]
    return batch


def load_target_boxes(path: str, images: Sequence[Dict[str, str]]) -> List[List[dict]]:
    """The boxes a JSON file gives for each image.

    The file maps an image (its path relative to the input, as in the
    manifest, its file name, or its path as found) to a list of
    ``{"bbox": [x1, y1, x2, y2], "label": <class name or index>}`` in
    original pixels.

    Args:
        path (str): The JSON file.
        images (Sequence[dict]): What :func:`find_images` found.

    Returns:
        list[list[dict]]: Per image, its boxes (empty if the file has none).

    Raises:
        UserInputError: If the file cannot be read, a box is malformed or a
            key names no input image; the message names the file.
    """
    try:
        with open(path, encoding='utf-8') as file:
            given = json.load(file)
    except (OSError, ValueError) as error:
        raise UserInputError(f'target boxes {path} cannot be read: {error}') from error
    if not isinstance(given, dict):
        raise UserInputError(f'target boxes {path}: expected an object mapping images to boxes')
    by_path: Dict[str, int] = {}
    by_name: Dict[str, List[int]] = {}
    for index, image in enumerate(images):
        for key in (image['img_path'], osp.abspath(image['img_path']), image['rel_path']):
            by_path.setdefault(key, index)
        by_name.setdefault(osp.basename(image['img_path']), []).append(index)
    boxes: List[List[dict]] = [[] for _ in images]
    for key, entries in given.items():
        found = [by_path[key]] if key in by_path else by_name.get(key, [])
        if not found:
            raise UserInputError(f'target boxes {path}: {key!r} is none of the input images')
        if len(found) > 1:  # a file name shared by images in different folders
            raise UserInputError(
                f'target boxes {path}: {key!r} names {len(found)} input images ('
                f'{", ".join(images[i]["rel_path"] for i in found)}); key them by relative path')
        image_index = found[0]
        for box in entries if isinstance(entries, list) else [entries]:
            bbox = box.get('bbox') if isinstance(box, dict) else None
            if not (isinstance(bbox, list) and len(bbox) == 4 and
                    all(isinstance(v, (int, float)) for v in bbox) and
                    bbox[0] < bbox[2] and bbox[1] < bbox[3] and 'label' in box):
                raise UserInputError(f'target boxes {path}: {key!r} has {box!r}; expected '
                                     '{"bbox": [x1, y1, x2, y2], "label": name or index}')
            boxes[image_index].append(dict(bbox=[float(v) for v in bbox], label=box['label']))
    return boxes
