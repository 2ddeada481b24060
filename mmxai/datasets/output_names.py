"""Output names that never collide: one name and one folder per input image.

Two images never share a relative path (the manifest's key) nor an output
folder, whatever inputs they came from: several inputs are told apart by
the fewest trailing path components that distinguish them (``p/imgs`` and
``q/imgs``), and output folders by the relative path without its extension,
with it where two would share one (``cat_jpg``, ``cat_png``).
"""
import os
import os.path as osp
from collections import Counter
from typing import Dict, List, Optional, Sequence, Set, Tuple

#: Extensions of the files mmxai writes into an image's folder (and of the manifest):
#: no image folder ends so, so a folder never takes the name of a written file.
WRITTEN_EXTENSIONS = ('.png', '.npy', '.json')


def _components(path: str) -> Tuple[str, ...]:
    rest = osp.splitdrive(osp.abspath(path))[1]
    if os.altsep:
        rest = rest.replace(os.altsep, os.sep)
    return tuple(part for part in rest.split(os.sep) if part)


def distinguishing_suffixes(paths: Sequence[str]) -> List[str]:
    """The fewest trailing path components that tell each path apart from the others.

    ``['/p/imgs', '/q/imgs', '/q/x.jpg']`` gives ``['p/imgs', 'q/imgs',
    'x.jpg']``. The results are distinct (also ignoring case) and none is a
    leading part of another, so ``result[i]/a`` never equals
    ``result[j]/b`` for ``i != j`` unless path ``j`` lies inside path ``i``
    (then both name the same file).

    Args:
        paths (Sequence[str]): Distinct files or folders.

    Returns:
        list[str]: One relative path per input path.
    """
    parts = [_components(path) for path in paths]
    depth = [min(1, len(part)) for part in parts]
    while True:
        keys = [tuple(c.casefold() for c in part[len(part) - d:])
                for part, d in zip(parts, depth)]
        owners: Dict[Tuple[str, ...], List[int]] = {}
        for index, key in enumerate(keys):
            owners.setdefault(key, []).append(index)
        clashing: Set[int] = set()
        for index, key in enumerate(keys):
            if len(owners[key]) > 1:
                clashing.add(index)
            for length in range(1, len(key)):  # another's name is a folder of this one's
                if key[:length] in owners:
                    clashing.add(index)
                    clashing.update(owners[key[:length]])
        growing = [index for index in clashing if depth[index] < len(parts[index])]
        if not growing:
            break
        for index in growing:
            depth[index] += 1
    return [osp.join(*part[len(part) - d:]) if d else '' for part, d in zip(parts, depth)]


def relative_names(paths: Sequence[str], root: Optional[str] = None) -> List[str]:
    """Names of images below the output root, distinct.

    Relative to ``root`` when every image is inside it, else their
    :func:`distinguishing_suffixes`.

    Args:
        paths (Sequence[str]): Distinct image files.
        root (str, optional): The folder the images come from.

    Returns:
        list[str]: One distinct relative path per image.
    """
    if root:
        prefix = osp.join(osp.abspath(root), '')
        if all(osp.abspath(path).startswith(prefix) for path in paths):
            return [osp.relpath(osp.abspath(path), prefix) for path in paths]
    return distinguishing_suffixes(paths)


def _unlike_a_written_file(stem: str) -> str:
    if not stem.lower().endswith(WRITTEN_EXTENSIONS):
        return stem
    dot = stem.rfind('.')
    return stem[:dot] + '_' + stem[dot + 1:]


def output_stems(rel_paths: Sequence[str]) -> List[str]:
    """The output folder (below the output root) of each image.

    The relative path without its extension (``sub/cat``); with it
    (``sub/cat_jpg``) where two images would share that folder; a name that
    ends like a written file (``saliency.png.jpg``) has its last dot made
    ``_``. Folders are distinct even on file systems that ignore case; a
    name still taken gets ``_2``, ``_3``, ... (in the order given).

    Args:
        rel_paths (Sequence[str]): Distinct relative image paths.

    Returns:
        list[str]: One folder per image, all distinct.
    """
    plain = [osp.splitext(rel)[0] for rel in rel_paths]
    shared = Counter(stem.casefold() for stem in plain)
    taken: Set[str] = set()
    stems = []
    for rel, stem in zip(rel_paths, plain):
        if shared[stem.casefold()] > 1:
            stem = stem + '_' + osp.splitext(rel)[1].lstrip('.')
        stem = _unlike_a_written_file(stem)
        candidate, number = stem, 1
        while candidate.casefold() in taken:
            number += 1
            candidate = f'{stem}_{number}'
        taken.add(candidate.casefold())
        stems.append(candidate)
    return stems


class ImageOutputNames:
    """Where each image of a data set writes its files: a relative path and an output folder.

    Folder-mode samples (:class:`~mmxai.datasets.ImageFolderDataset`) carry
    their own (``rel_path``, ``output_stem`` in the metainfo). The images of
    an annotated data set are named relative to its image folder when every
    image lies in it (wrappers such as ``ConcatDataset`` have none), else by
    the trailing path components that tell them apart (:func:`relative_names`,
    :func:`output_stems`).
    """

    def __init__(self) -> None:
        #: The data set's image folder (``data_prefix``), if it has one.
        self.input_root: Optional[str] = None
        self._names: Dict[str, Tuple[str, str]] = {}
        self._dataset: object = None

    def use(self, dataset: object) -> None:
        """Name the images of ``dataset`` (computed once per data set)."""
        prefix = getattr(dataset, 'data_prefix', None) or {}
        self.input_root = prefix.get('img') or prefix.get('img_path') or None
        if self._dataset is dataset:  # validation: the same data set every time
            return
        self._dataset = dataset
        self._names = {}
        from .image_folder import ImageFolderDataset
        if isinstance(dataset, ImageFolderDataset) or not hasattr(dataset, 'get_data_info'):
            return
        paths = []
        for index in range(len(dataset)):
            info = dataset.get_data_info(index)
            if isinstance(info, dict) and info.get('img_path'):
                paths.append(osp.abspath(info['img_path']))
        paths = list(dict.fromkeys(paths))
        names = relative_names(paths, self.input_root)
        self._names = dict(zip(paths, zip(names, output_stems(names))))

    def relative_path(self, metainfo: dict) -> str:
        """Where an image's files go, relative to the output root (the manifest's key)."""
        if 'rel_path' in metainfo:
            return metainfo['rel_path']
        named = self._names.get(osp.abspath(metainfo['img_path']))
        if named:
            return named[0]
        path = metainfo['img_path']
        root = osp.abspath(self.input_root) + os.sep if self.input_root else None
        if root and osp.abspath(path).startswith(root):
            return osp.relpath(path, root)
        return osp.basename(path)

    def output_stem(self, metainfo: dict) -> str:
        """The folder of an image's files, relative to the output root."""
        if 'output_stem' in metainfo:
            return metainfo['output_stem']
        named = self._names.get(osp.abspath(metainfo['img_path']))
        if named and 'rel_path' not in metainfo:
            return named[1]
        return osp.splitext(self.relative_path(metainfo))[0]
