"""Datasets for explaining unlabeled inputs, and robust image reading."""
from .image_folder import (
                           IMAGE_EXTENSIONS,
                           SKIPPED,
                           ImageFolderDataset,
                           ImageList,
                           collate_skipping_unreadable,
                           find_images,
)
from .image_io import UnreadableImageError, check_image_bytes, read_image
from .output_names import ImageOutputNames, distinguishing_suffixes, output_stems, relative_names
from .synthetic import (
                        SHAPE_CLASSES,
                        make_classification_split,
                        make_detection_split,
                        make_multilabel_split,
)
from .transforms import LoadImageChecked, LoadImageFromArray

__all__ = ['IMAGE_EXTENSIONS', 'SKIPPED', 'ImageFolderDataset', 'ImageList',
           'collate_skipping_unreadable', 'find_images', 'UnreadableImageError',
           'check_image_bytes', 'read_image', 'SHAPE_CLASSES', 'make_classification_split',
           'make_detection_split', 'make_multilabel_split', 'LoadImageChecked',
           'LoadImageFromArray',
           'ImageOutputNames', 'distinguishing_suffixes', 'output_stems', 'relative_names']
