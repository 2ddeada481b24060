"""Datasets for explaining unlabeled inputs."""
from .image_folder import IMAGE_EXTENSIONS, ImageFolderDataset, find_images
from .synthetic import SHAPE_CLASSES, make_classification_split, make_detection_split
from .transforms import LoadImageFromArray

__all__ = ['IMAGE_EXTENSIONS', 'ImageFolderDataset', 'find_images', 'SHAPE_CLASSES',
           'make_classification_split', 'make_detection_split', 'LoadImageFromArray']
