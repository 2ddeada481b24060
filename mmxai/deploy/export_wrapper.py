"""The module that is exported: the real model, then the same explainer on what it captured."""
import inspect
from typing import Dict, List, Tuple, Union

from torch import Tensor, nn

from ..adapters import build_adapter
from ..explainers import BaseExplainer, BaseGradientCAM, explainer_for
from ..utils.errors import UnsupportedExportError
from .metadata import SALIENCY_OUTPUT, ExportMetadata

#: Explainer types whose maps are plain tensor arithmetic on one forward pass.
EXPORTABLE_EXPLAINERS: Dict[str, str] = {
    'ReciproCAM': 'the head on every position of the last feature map, batched',
    'ViTReciproCAM': 'the last block at the CLS token for every token mask, batched',
    'DetClassProbabilityMap': "the head's class probabilities, max over anchors, levels merged",
    'ActivationMap': 'channel mean / norm of the features',
}
#: Why the other explainers are not, by type name.
NOT_EXPORTABLE: Dict[str, str] = {
    'EigenCAM': 'it needs an eigendecomposition (torch.linalg.eigh), which ONNX has no '
                'operator for',
    'RISE': 'it runs the model on hundreds of masked copies (black-box)',
    'DRISE': 'it runs the detector on hundreds of masked copies (black-box)',
}
GRADIENT_REASON = 'gradient methods need a backward pass, which an inference graph has not'
#: Why detectors with RoI heads (Mask R-CNN, Faster R-CNN, ...) are not.
ROI_HEAD_REASON = ('its RPN decodes and NMS-filters proposals inside the forward pass (mmdet '
                   "3.3.0's ONNX branch for that imports the removed mmdet.core.export) and its "
                   'RoI heads (mmcv RoIAlign) run on their data-dependent number')


class ExplainExportWrapper(nn.Module):
    """What ``tools/export.py`` traces: the model's own outputs plus ``saliency_map``.

    ``forward`` runs the wrapped model on the network input with the mmxai
    adapter capturing its features and head outputs (exactly as explain mode
    does), then calls the same explainer on the captured tensors; so the
    exported map is explain mode's by construction.

    Outputs, batch first:

    * classification: ``logits`` (B, K) (the head's output), then ``saliency_map``;
    * detection: the dense head's ``forward()`` outputs per level, named after
      ``predict_by_feat``'s arguments (``cls_scores_0``, ``bbox_preds_0``,
      ...), then ``saliency_map``.

    ``saliency_map`` is (B, K, h, w) for class-wise methods, (B, 1, h, w)
    otherwise, at feature resolution, in the method's own values (before any
    normalisation).

    Args:
        model (nn.Module): An MMDetection detector or MMPretrain ImageClassifier.
        algorithm (str | dict | BaseExplainer): The explain algorithm.
        saliency (bool): False leaves ``saliency_map`` out: the plain model,
            the baseline the saliency output's cost is measured against.

    Raises:
        UnsupportedExportError: If the model/algorithm pair cannot be exported.
    """

    def __init__(self, model: nn.Module, algorithm: Union[str, dict, BaseExplainer],
                 saliency: bool = True) -> None:
        super().__init__()
        self.model = model
        self.saliency = saliency
        self.adapter = build_adapter(model)
        self.explainer = explainer_for(algorithm, self.adapter)
        self._check_exportable()
        self._map_size: Tuple[int, int] = (0, 0)  # of the last traced pass's maps

    def _check_exportable(self) -> None:
        name = type(self.explainer).__name__
        model_name = type(self.model).__name__
        if self.adapter.task == 'detection' and getattr(self.model, 'bbox_head', None) is None:
            raise UnsupportedExportError(f'{model_name} cannot be exported: {ROI_HEAD_REASON}; '
                                         'single-stage detectors with a dense bbox_head can be')
        if self.adapter.family == 'query_detection':
            raise UnsupportedExportError(
                f'{model_name} cannot be exported: its head reads the transformer decoder\'s '
                'queries, not the feature maps (mmxai exports a detector as its features and '
                'dense head); single-stage detectors with a dense bbox_head can be')
        if name in EXPORTABLE_EXPLAINERS:
            return
        reason = GRADIENT_REASON if isinstance(self.explainer, BaseGradientCAM) else \
            NOT_EXPORTABLE.get(name, 'it is not one of the exportable methods')
        raise UnsupportedExportError(
            f'{self.explainer.algorithm} ({name}) cannot be exported with {model_name}: {reason}; '
            f'exportable: {", ".join(sorted(EXPORTABLE_EXPLAINERS))}')

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """Model outputs, flattened, then the saliency maps (see the class doc)."""
        with self.adapter.capture():
            if self.adapter.task == 'detection':
                # bbox_head called as a module (mmdet's 'tensor' mode calls
                # .forward() directly, which the capture hooks would not see).
                outputs = self.model.bbox_head(self.model.extract_feat(inputs))
                flat = [level for item in outputs for level in item]
            else:
                flat = [self.model(inputs, mode='tensor')]
        if not self.saliency:
            return tuple(flat)
        maps = self.explainer(self.adapter, None, None)
        self._map_size = tuple(int(size) for size in maps.shape[-2:])
        return (*flat, maps)

    def metadata(self, input_shape: Tuple[int, int], class_names: List[str] = None
                 ) -> ExportMetadata:
        """The metadata to store with the exported graph (after one traced pass).

        Args:
            input_shape (tuple): (H, W) the model is exported for.
            class_names (list[str], optional): The model's class names.
        """
        head_outputs: List[List[str]] = []
        if self.adapter.task == 'detection':
            outputs = self.adapter.captured('bbox_head')
            arguments = list(inspect.signature(self.model.bbox_head.predict_by_feat).parameters)
            head_outputs = [[f'{arguments[i]}_{level}' for level in range(len(item))]
                            for i, item in enumerate(outputs)]
            names = [name for item in head_outputs for name in item]
        else:
            names = ['logits']
        return ExportMetadata(
            task=self.adapter.task, family=self.adapter.family,
            algorithm=self.explainer.algorithm, class_wise=self.explainer.class_wise,
            num_classes=self.adapter.num_classes, input_shape=tuple(input_shape),
            # The plain baseline (no saliency output) is only measured, never explained.
            cell_grid=tuple(self.explainer.map_grid(self.adapter, self._map_size))
            if self.saliency else (0.0, 0.0, 0.0, 0.0),
            value_range=self.explainer.value_range,
            outputs=names + ([SALIENCY_OUTPUT] if self.saliency else []),
            head_outputs=head_outputs, class_names=class_names)
