"""Unlabeled images from folders, single files or lists of paths."""
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset

from ..registry import DATASETS

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def find_images(inputs: Union[str, Sequence[str]],
                extensions: Sequence[str] = IMAGE_EXTENSIONS) -> List[dict]:
    """List images with the path each keeps below the output root.

    A folder is searched recursively and its images keep their path relative
    to it (prefixed by the folder's name when several inputs are given, so
    equal relative paths never collide); a file keeps its name.

    Args:
        inputs (str | Sequence[str]): Folders and/or image files; an item
            that is no existing path is split at commas (``"a/,b/"``).
        extensions (Sequence[str]): File name endings counted as images.

    Returns:
        list[dict]: ``img_path`` and ``rel_path`` of every image, sorted.

    Raises:
        FileNotFoundError: If an input does not exist.
    """
    paths = []
    for item in ([inputs] if isinstance(inputs, str) else inputs):
        # OTX accepted "dir1,dir2"; split only when the whole string is no path.
        parts = item.split(',') if ',' in item and not osp.exists(item) else [item]
        paths += [part for part in parts if part]
    several = len(paths) > 1
    found = []
    for path in paths:
        if osp.isdir(path):
            prefix = osp.basename(osp.normpath(path)) if several else ''
            for folder, subfolders, files in os.walk(path, followlinks=False):
                subfolders.sort()
                for name in sorted(files):
                    if name.lower().endswith(tuple(extensions)):
                        full = osp.join(folder, name)
                        found.append(dict(img_path=full,
                                          rel_path=osp.join(prefix, osp.relpath(full, path))))
        elif osp.isfile(path):
            found.append(dict(img_path=path, rel_path=osp.basename(path)))
        else:
            raise FileNotFoundError(f'input {path} does not exist')
    return found


@DATASETS.register_module()
class ImageFolderDataset(BaseDataset):
    """Images to explain, without annotations.

    Args:
        inputs (str | Sequence[str]): Folders (searched recursively) and/or
            image files.
        pipeline (Sequence[dict]): The model's test pipeline without
            annotation loading.
        metainfo (dict, optional): ``classes`` (and ``palette``) of the model.
        extensions (Sequence[str]): File name endings counted as images.
    """

    def __init__(self,
                 inputs: Union[str, Sequence[str]],
                 pipeline: Sequence[dict] = (),
                 metainfo: Optional[dict] = None,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS,
                 **kwargs) -> None:
        self.inputs = inputs
        self.extensions = tuple(e.lower() for e in extensions)
        super().__init__(ann_file='', metainfo=metainfo, pipeline=list(pipeline),
                         test_mode=True, **kwargs)

    def load_data_list(self) -> List[dict]:
        images = find_images(self.inputs, self.extensions)
        if not images:
            raise ValueError(f'no images ({", ".join(self.extensions)}) found in {self.inputs}')
        for index, image in enumerate(images):
            image.update(img_id=index, sample_idx=index)
        return images
