"""Adapters: what an explainer may read from one forward pass of a model.

An adapter registers forward hooks on the wrapped model's modules while the
model predicts, so the feature maps and head outputs that the prediction
computed anyway are kept for the explainers; nothing is run twice.
"""
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .det_heads import check_head_supported, class_probability_levels


class ModelAdapter:
    """Base of the task adapters.

    Args:
        model (nn.Module): The MMDetection or MMPretrain model (not wrapped).
    """

    task: str = ''
    #: Where a feature cell's value sits in its stride block (padded CNNs and
    #: MMDetection priors: ``'start'``; see ``mmxai.visualization.resample_cells``).
    cell_anchor: str = 'start'

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._captured: Dict[str, Any] = {}

    def modules_to_capture(self) -> Dict[str, nn.Module]:
        """Modules whose forward outputs are kept, by name."""
        raise NotImplementedError

    @contextmanager
    def capture(self) -> Iterator[None]:
        """Keep the outputs of :meth:`modules_to_capture` during the block."""
        self._captured.clear()
        def keep_input_shape(_module: nn.Module, args: Any) -> None:
            self._captured['input_shape'] = args[0].shape[-2:]
        handles = [self.model.backbone.register_forward_pre_hook(keep_input_shape)]
        for name, module in self.modules_to_capture().items():
            def keep(_module: nn.Module, _args: Any, output: Any, name: str = name) -> None:
                self._captured[name] = output
            handles.append(module.register_forward_hook(keep))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def captured(self, name: str) -> Any:
        """An output kept by the last :meth:`capture`."""
        if name not in self._captured:
            raise RuntimeError(f'{type(self.model).__name__}.{name} did not run during the '
                               'forward pass; explainers must run after a captured predict')
        return self._captured[name]

    def feature_maps(self) -> List[Tensor]:
        """Spatial feature maps (B, C, h, w), one per level."""
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        """Number of classes the model predicts."""
        raise NotImplementedError


class DetectorAdapter(ModelAdapter):
    """Adapter for MMDetection single-stage detectors (backbone, neck, bbox_head)."""

    task = 'detection'

    def modules_to_capture(self) -> Dict[str, nn.Module]:
        model = self.model
        modules = {'features': model.neck if getattr(model, 'with_neck', False) else model.backbone}
        if getattr(model, 'bbox_head', None) is not None:
            modules['bbox_head'] = model.bbox_head
        return modules

    def feature_maps(self) -> List[Tensor]:
        features = self.captured('features')
        return list(features) if isinstance(features, (tuple, list)) else [features]

    def class_probability_levels(self) -> List[Tensor]:
        """Per-level class probabilities (B, K, h_l, w_l), max over anchors."""
        return class_probability_levels(self.model.bbox_head, self.captured('bbox_head'))

    def check_class_probabilities_supported(self) -> None:
        """Raise ``UnsupportedModelError`` unless the head is in the table."""
        check_head_supported(getattr(self.model, 'bbox_head', None), type(self.model).__name__)

    @property
    def num_classes(self) -> int:
        model = self.model
        head = getattr(model, 'bbox_head', None)
        if head is None:  # two-stage detectors
            head = getattr(getattr(model, 'roi_head', None), 'bbox_head', None)
        return head.num_classes


class ClassifierAdapter(ModelAdapter):
    """Adapter for MMPretrain ``ImageClassifier`` models (backbone, neck, head)."""

    task = 'classification'

    def modules_to_capture(self) -> Dict[str, nn.Module]:
        return {'backbone': self.model.backbone}

    def feature_maps(self) -> List[Tensor]:
        outputs = self.captured('backbone')
        last = outputs[-1] if isinstance(outputs, (tuple, list)) else outputs
        if not (isinstance(last, Tensor) and last.dim() == 4):
            raise ValueError(f'{type(self.model.backbone).__name__} does not output a (B, C, h, w) '
                             'feature map; this explainer needs a convolutional backbone')
        return [last]

    @property
    def multi_label(self) -> bool:
        """Whether the head scores classes independently (sigmoid)."""
        from mmpretrain.models.heads import MultiLabelClsHead
        return isinstance(self.model.head, MultiLabelClsHead)

    @property
    def neck_is_global_average_pooling(self) -> bool:
        """Whether the neck is a plain spatial global average pooling."""
        from mmpretrain.models.necks import GlobalAveragePooling
        neck = getattr(self.model, 'neck', None)
        return isinstance(neck, GlobalAveragePooling) and isinstance(neck.gap, nn.AdaptiveAvgPool2d)

    def scores_from_head_input(self, pooled: Tensor) -> Tensor:
        """Class probabilities from vectors the head takes (after the neck)."""
        return self._activate(self.model.head((pooled,)))

    def scores_from_feature_maps(self, feature_maps: Tensor) -> Tensor:
        """Class probabilities of backbone feature maps run through neck and head."""
        feats: Sequence[Tensor] = (feature_maps,)
        if getattr(self.model, 'neck', None) is not None:
            feats = self.model.neck(feats)
        return self._activate(self.model.head(feats))

    def _activate(self, logits: Tensor) -> Tensor:
        return logits.sigmoid() if self.multi_label else F.softmax(logits, dim=1)

    @property
    def num_classes(self) -> int:
        head = self.model.head
        return getattr(head, 'num_classes', None) or head.fc.out_features


def _is_instance(model: nn.Module, module_path: str, class_name: str) -> bool:
    try:
        module = __import__(module_path, fromlist=[class_name])
    except ImportError:  # that OpenMMLab package is not installed
        return False
    return isinstance(model, getattr(module, class_name))


def build_adapter(model: nn.Module) -> ModelAdapter:
    """The adapter for ``model``'s task.

    Raises:
        TypeError: If the model is neither an MMDetection detector nor an
            MMPretrain ``ImageClassifier``.
    """
    if _is_instance(model, 'mmdet.models.detectors', 'BaseDetector'):
        return DetectorAdapter(model)
    if _is_instance(model, 'mmpretrain.models.classifiers', 'ImageClassifier'):
        return ClassifierAdapter(model)
    raise TypeError(f'mmxai cannot explain {type(model).__name__}: it supports MMDetection '
                    'detectors and MMPretrain ImageClassifier models')
