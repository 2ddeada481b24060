"""Adapters: what explainers may read from one forward pass, one file per model family."""
from .base import ModelAdapter
from .builder import build_adapter
from .classifier import ClassifierAdapter
from .dense_heads import SUPPORTED_HEADS, class_probability_levels, unreadable_head_reason
from .detector import DetectorAdapter
from .instance_segmentation import InstanceSegmentationAdapter
from .predicted_masks import PredictedMaskAdapter
from .query_detector import QueryDetectorAdapter
from .two_stage import TwoStageDetectorAdapter
from .vision_transformer import VisionTransformerAdapter

__all__ = ['ModelAdapter', 'build_adapter', 'ClassifierAdapter', 'SUPPORTED_HEADS',
           'unreadable_head_reason', 'class_probability_levels', 'DetectorAdapter',
           'InstanceSegmentationAdapter', 'PredictedMaskAdapter', 'QueryDetectorAdapter',
           'TwoStageDetectorAdapter', 'VisionTransformerAdapter']
