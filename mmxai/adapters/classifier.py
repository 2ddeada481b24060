"""The adapter of MMPretrain image classifiers with a spatial feature map."""
from typing import Dict, List, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ..utils.errors import UnsupportedModelError
from .base import ModelAdapter


class ClassifierAdapter(ModelAdapter):
    """Adapter for MMPretrain ``ImageClassifier`` models (backbone, neck, head).

    CNN backbones (ResNet, MobileNet, ...) and Swin give their last feature map
    (B, C, h, w); single-label heads score with a softmax, multi-label heads
    (``MultiLabelClsHead`` and subclasses) with a sigmoid.
    """

    task = 'classification'
    family = 'classification'
    feature_source = 'backbone'

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        from mmpretrain.models.backbones import SwinTransformer
        if isinstance(model.backbone, SwinTransformer):
            self.cell_anchor = 'center'  # non-overlapping patches

    def modules_to_capture(self) -> Dict[str, nn.Module]:
        return {'backbone': self.model.backbone}

    def feature_maps(self) -> List[Tensor]:
        outputs = self.captured('backbone')
        last = outputs[-1] if isinstance(outputs, (tuple, list)) else outputs
        if not (isinstance(last, Tensor) and last.dim() == 4):
            raise UnsupportedModelError(
                f'{type(self.model.backbone).__name__} does not output a (B, C, h, w) feature '
                'map; explainers need a CNN backbone or a ViT/DeiT/Swin transformer')
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

    def probabilities(self, logits: Tensor) -> Tensor:
        """Class probabilities of (n, K) logits: softmax, or sigmoid for multi-label heads."""
        return logits.sigmoid() if self.multi_label else F.softmax(logits, dim=1)

    def head_logits(self, features: Sequence[Tensor]) -> Tensor:
        """(n, K) logits of the neck (if any) and head on backbone outputs ``features``."""
        if getattr(self.model, 'neck', None) is not None:
            features = self.model.neck(tuple(features))
        return self.model.head(tuple(features))

    def scores_from_head_input(self, pooled: Tensor) -> Tensor:
        """Class probabilities from vectors the head takes (after the neck)."""
        return self.probabilities(self.model.head((pooled,)))

    def scores_from_feature_maps(self, feature_maps: Tensor) -> Tensor:
        """Class probabilities of backbone feature maps run through neck and head."""
        return self.probabilities(self.head_logits((feature_maps,)))

    def scores_after_features(self, features: List[Tensor], score_thr: float) -> Tensor:
        return self.head_logits((features[-1],))  # logits, as Grad-CAM differentiates

    def scores_from_input(self, inputs: Tensor, score_thr: float) -> Tensor:
        return self.model(inputs, mode='tensor')

    def probabilities_of_inputs(self, inputs: Tensor) -> Tensor:
        """(n, K) class probabilities of preprocessed (e.g. masked) inputs."""
        return self.probabilities(self.model(inputs, mode='tensor'))

    @property
    def num_classes(self) -> int:
        head = self.model.head
        return getattr(head, 'num_classes', None) or head.fc.out_features
