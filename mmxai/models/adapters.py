"""Adapters: what an explainer may read from one forward pass of a model.

An adapter registers forward hooks on the wrapped model's modules while the
model predicts, so the feature maps and head outputs that the prediction
computed anyway are kept for the explainers; nothing is run twice.
"""
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..explainers.base import UnsupportedModelError
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

    def inputs_to_capture(self) -> Dict[str, Tuple[nn.Module, int]]:
        """Modules whose forward input at a position is kept, by name."""
        return {'backbone_input': (self.model.backbone, 0)}

    @contextmanager
    def capture(self) -> Iterator[None]:
        """Keep the outputs (and inputs) of the modules to capture during the block."""
        self._captured.clear()
        handles = []
        for name, (module, position) in self.inputs_to_capture().items():
            def keep_input(_module: nn.Module, args: Any, name: str = name,
                           position: int = position) -> None:
                self._captured[name] = args[position]
            handles.append(module.register_forward_pre_hook(keep_input))
        for name, module in self.modules_to_capture().items():
            def keep(_module: nn.Module, _args: Any, output: Any, name: str = name) -> None:
                self._captured[name] = output
            handles.append(module.register_forward_hook(keep))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    @property
    def algorithm_family(self) -> str:
        """Key of :data:`mmxai.explainers.ALGORITHMS` that serves this model."""
        return self.task

    @property
    def input_shape(self) -> Tuple[int, int]:
        """(H, W) of the network input of the last captured pass (padded batch)."""
        return tuple(self.captured('backbone_input').shape[-2:])

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

    def differentiable_scores(self, target_layer: Optional[str] = None,
                              score_thr: float = 0.3) -> Tuple[List[Tensor], Tensor]:
        """Target-layer activations and (B, K) class scores differentiable in them.

        Call under ``torch.enable_grad()``. With the default layer (None) the
        activations are the captured feature maps and only the part of the
        network after them runs again (the head); a named layer (a module
        name such as ``'backbone.layer3'``) runs the whole network again from
        the captured input.

        Args:
            target_layer (str, optional): Module name; None for the default.
            score_thr (float): Detection: class scores sum the per-position
                probabilities of at least this (the predicted boxes' scores),
                or take the largest if none is.

        Returns:
            tuple: (B, C, h, w) activations per level (requiring grad) and the
            (B, K) scores.
        """
        if target_layer is None:
            activations = [f.detach().requires_grad_() for f in self.feature_maps()]
            return activations, self._scores_after_features(activations, score_thr)
        modules = dict(self.model.named_modules())
        if target_layer not in modules:
            raise UnsupportedModelError(f'{type(self.model).__name__} has no module '
                                        f'{target_layer!r} to take gradients at')
        kept: List[Any] = []
        handle = modules[target_layer].register_forward_hook(
            lambda _module, _args, output: kept.append(output))
        try:
            scores = self._scores_from_input(self.captured('backbone_input').detach(), score_thr)
        finally:
            handle.remove()
        output = kept[-1]
        activations = list(output) if isinstance(output, (tuple, list)) else [output]
        if not all(isinstance(a, Tensor) and a.dim() == 4 for a in activations):
            raise UnsupportedModelError(f'{target_layer!r} does not output (B, C, h, w) maps')
        return activations, scores

    def _scores_after_features(self, features: List[Tensor], score_thr: float) -> Tensor:
        raise NotImplementedError

    def _scores_from_input(self, inputs: Tensor, score_thr: float) -> Tensor:
        raise NotImplementedError


class DetectorAdapter(ModelAdapter):
    """Adapter for MMDetection detectors: features, a dense ``bbox_head`` or RoI mask head."""

    task = 'detection'

    def modules_to_capture(self) -> Dict[str, nn.Module]:
        model = self.model
        modules = {'features': model.neck if getattr(model, 'with_neck', False) else model.backbone}
        if getattr(model, 'bbox_head', None) is not None:
            modules['bbox_head'] = model.bbox_head
        if self.has_mask_head:
            modules['mask_logits'] = model.roi_head.mask_head
        return modules

    def inputs_to_capture(self) -> Dict[str, Tuple[nn.Module, int]]:
        inputs = super().inputs_to_capture()
        if self.has_mask_head:  # (feats, rois): the boxes the soft masks belong to
            inputs['mask_rois'] = (self.model.roi_head.mask_roi_extractor, 1)
        return inputs

    @property
    def has_mask_head(self) -> bool:
        """Whether the detector predicts instance masks with an RoI mask head."""
        roi_head = getattr(self.model, 'roi_head', None)
        return getattr(roi_head, 'mask_head', None) is not None and \
            getattr(roi_head, 'mask_roi_extractor', None) is not None

    @property
    def algorithm_family(self) -> str:
        return 'instance_segmentation' if self.has_mask_head else self.task

    def soft_masks(self) -> Tuple[Tensor, Tensor]:
        """Soft masks of the last pass's detections and their boxes.

        Returns:
            tuple: (N, K or 1, m, m) mask probabilities (sigmoid of the mask
            head's logits) and (N, 5) RoIs ``(image index, x1, y1, x2, y2)`` in
            network-input pixels, in the order of the predicted instances.
        """
        if 'mask_logits' not in self._captured:  # no detection at all: the head did not run
            return self.captured('backbone_input').new_zeros(0, 1, 1, 1), \
                self.captured('backbone_input').new_zeros(0, 5)
        return self.captured('mask_logits').sigmoid(), self.captured('mask_rois')

    def feature_maps(self) -> List[Tensor]:
        features = self.captured('features')
        return list(features) if isinstance(features, (tuple, list)) else [features]

    def class_probability_levels(self) -> List[Tensor]:
        """Per-level class probabilities (B, K, h_l, w_l), max over anchors."""
        return class_probability_levels(self.model.bbox_head, self.captured('bbox_head'))

    def check_class_probabilities_supported(self, method: str = 'classwisesaliencymap') -> None:
        """Raise ``UnsupportedModelError`` unless the head is in the table."""
        check_head_supported(getattr(self.model, 'bbox_head', None), type(self.model).__name__,
                             method)

    def detections_of_inputs(self, inputs: Tensor, sample: Any) -> List[Any]:
        """The detector's predictions (``InstanceData``) for inputs shaped like ``sample``'s.

        Args:
            inputs (Tensor): (n, 3, H, W) preprocessed inputs (e.g. masked).
            sample: The data sample whose metainfo (sizes, scale) they share.
        """
        samples = [type(sample)(metainfo=sample.metainfo) for _ in range(len(inputs))]
        return [s.pred_instances for s in self.model.predict(inputs, samples, rescale=True)]

    def _scores_after_features(self, features: List[Tensor], score_thr: float) -> Tensor:
        return self._scores_from_levels(self.model.bbox_head(tuple(features)), score_thr)

    def _scores_from_input(self, inputs: Tensor, score_thr: float) -> Tensor:
        head_outputs = self.model.bbox_head(self.model.extract_feat(inputs))
        return self._scores_from_levels(head_outputs, score_thr)

    def _scores_from_levels(self, head_outputs: Any, score_thr: float) -> Tensor:
        levels = class_probability_levels(self.model.bbox_head, head_outputs)
        probabilities = torch.cat([level.flatten(2) for level in levels], dim=2)  # (B, K, N)
        predicted = probabilities.detach() >= score_thr
        return torch.where(predicted.any(-1), (probabilities * predicted).sum(-1),
                           probabilities.amax(-1))

    @property
    def num_classes(self) -> int:
        model = self.model
        head = getattr(model, 'bbox_head', None)
        if head is None:  # two-stage detectors
            head = getattr(getattr(model, 'roi_head', None), 'bbox_head', None)
        return head.num_classes


class ClassifierAdapter(ModelAdapter):
    """Adapter for MMPretrain ``ImageClassifier`` models (backbone, neck, head).

    CNN backbones give their last feature map. Vision transformers (ViT, DeiT)
    give their final patch tokens on the patch grid, and keep the input of the
    last block for ViT Recipro-CAM.
    """

    task = 'classification'

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        from mmpretrain.models.backbones import SwinTransformer, VisionTransformer
        backbone = model.backbone
        self.is_vision_transformer = isinstance(backbone, VisionTransformer)
        if self.is_vision_transformer or isinstance(backbone, SwinTransformer):
            self.cell_anchor = 'center'  # non-overlapping patches

    def modules_to_capture(self) -> Dict[str, nn.Module]:
        backbone = self.model.backbone
        modules = {'backbone': backbone}
        if self.is_vision_transformer:
            modules['patch_embed'] = backbone.patch_embed
            modules['last_tokens'] = backbone.ln1 if backbone.final_norm else backbone.layers[-1]
        return modules

    def inputs_to_capture(self) -> Dict[str, Tuple[nn.Module, int]]:
        inputs = super().inputs_to_capture()
        if self.is_vision_transformer:
            inputs['last_block_input'] = (self.model.backbone.layers[-1], 0)
        return inputs

    @property
    def algorithm_family(self) -> str:
        return 'vision_transformer' if self.is_vision_transformer else self.task

    @property
    def patch_resolution(self) -> Tuple[int, int]:
        """(h, w) patch grid of the last captured pass (vision transformers)."""
        return tuple(self.captured('patch_embed')[1])

    @property
    def num_extra_tokens(self) -> int:
        """Tokens before the patch tokens (CLS, distillation)."""
        return self.model.backbone.num_extra_tokens

    def feature_maps(self) -> List[Tensor]:
        if self.is_vision_transformer:
            tokens = self.captured('last_tokens')[:, self.num_extra_tokens:]
            return [tokens.transpose(1, 2).unflatten(2, self.patch_resolution)]
        outputs = self.captured('backbone')
        last = outputs[-1] if isinstance(outputs, (tuple, list)) else outputs
        if not (isinstance(last, Tensor) and last.dim() == 4):
            raise UnsupportedModelError(
                f'{type(self.model.backbone).__name__} does not output a (B, C, h, w) feature '
                'map; explainers need a CNN backbone or a ViT/DeiT/Swin transformer')
        return [last]

    def check_recipro_cam_supported(self) -> None:
        """Raise ``UnsupportedModelError`` if CNN Recipro-CAM cannot run."""
        if self.is_vision_transformer:
            raise UnsupportedModelError(
                f'{type(self.model.backbone).__name__} needs ViT Recipro-CAM (ViTReciproCAM), '
                'not the CNN ReciproCAM')

    def check_vit_recipro_cam_supported(self) -> None:
        """Raise ``UnsupportedModelError`` unless ViT Recipro-CAM can run."""
        backbone = self.model.backbone
        name = type(backbone).__name__
        if not self.is_vision_transformer or not backbone.with_cls_token:
            raise UnsupportedModelError(
                f'ViT Recipro-CAM needs a vision transformer with a CLS token; {name} has '
                'none. Use activationmap or eigencam, or Recipro-CAM for CNN-like backbones')
        if backbone.out_type != 'cls_token' or len(backbone.out_indices) != 1 \
                or backbone.out_indices[0] != len(backbone.layers) - 1:
            raise UnsupportedModelError(
                f'ViT Recipro-CAM needs {name} with out_type="cls_token" from the last layer '
                f'only; this one has out_type={backbone.out_type!r}, '
                f'out_indices={list(backbone.out_indices)}')

    def scores_from_extra_tokens(self, extra_tokens: Tensor) -> Tensor:
        """Class probabilities from the last block's output at the extra tokens.

        Args:
            extra_tokens (Tensor): (M, E, C) CLS (and distillation) tokens.
        """
        backbone = self.model.backbone
        if backbone.final_norm:
            extra_tokens = backbone.ln1(extra_tokens)
        cls_token = extra_tokens[:, 0]
        feats = (cls_token, extra_tokens[:, 1]) if self.num_extra_tokens == 2 else cls_token
        return self._activate(self.model.head((feats,)))

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

    def _scores_after_features(self, features: List[Tensor], score_thr: float) -> Tensor:
        feats: Sequence[Tensor] = (features[-1],)
        if getattr(self.model, 'neck', None) is not None:
            feats = self.model.neck(feats)
        return self.model.head(feats)  # logits, as Grad-CAM differentiates

    def _scores_from_input(self, inputs: Tensor, score_thr: float) -> Tensor:
        return self.model(inputs, mode='tensor')

    def probabilities_of_inputs(self, inputs: Tensor) -> Tensor:
        """(n, K) class probabilities of preprocessed (e.g. masked) inputs."""
        return self._activate(self.model(inputs, mode='tensor'))

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
