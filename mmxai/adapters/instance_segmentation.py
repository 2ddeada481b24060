"""The adapter of detectors with an RoI mask head (Mask R-CNN, Cascade Mask R-CNN, HTC)."""
from typing import Dict, List, Optional, Tuple

from torch import Tensor, nn

from .detector import DetectorAdapter


def has_roi_mask_head(model: nn.Module) -> bool:
    """Whether a detector predicts instance masks with an RoI mask head."""
    roi_head = getattr(model, 'roi_head', None)
    return getattr(roi_head, 'mask_head', None) is not None and \
        getattr(roi_head, 'mask_roi_extractor', None) is not None


def unreadable_mask_head_reason(model: nn.Module) -> Optional[str]:
    """Why the mask head's outputs are not one soft mask per detection; None if they are.

    QueryInst's ``SparseRoIHead.predict_mask`` runs the mask head on every
    learned proposal and then picks each detection's mask by the top-k of its
    proposal x class scores, inside the method: the captured masks are the
    proposals', in their order, not the detections'.
    """
    from mmdet.models.roi_heads import SparseRoIHead
    roi_head = getattr(model, 'roi_head', None)
    if isinstance(roi_head, SparseRoIHead):
        return (f'{type(roi_head).__name__} runs its mask head on every learned proposal and '
                'picks each detection\'s mask inside predict_mask (a top-k over proposal x class '
                'scores): its masks are not one per detection')
    return None


def _stages(modules: nn.Module) -> List[nn.Module]:
    """The per-stage modules of a cascade (an ``nn.ModuleList``), or the one module."""
    return list(modules) if isinstance(modules, nn.ModuleList) else [modules]


class InstanceSegmentationAdapter(DetectorAdapter):
    """Adapter for detectors with an RoI mask head: also keeps the soft masks.

    The mask head's logits and the RoIs they were computed for are captured in
    the prediction pass, in the order of the predicted instances. Cascades
    (Cascade Mask R-CNN, HTC) keep one mask head per stage in an
    ``nn.ModuleList``, which is never called itself: every stage's head is
    captured, and the soft masks are those the detector's own prediction uses
    (see :meth:`soft_masks`).
    """

    family = 'instance_segmentation'

    @property
    def mask_heads(self) -> List[nn.Module]:
        """The mask head of each stage (one for Mask R-CNN)."""
        return _stages(self.model.roi_head.mask_head)

    def modules_to_capture(self) -> Dict[str, nn.Module]:
        modules = super().modules_to_capture()
        modules.update({f'mask_logits_{stage}': head
                        for stage, head in enumerate(self.mask_heads)})
        return modules

    def inputs_to_capture(self) -> Dict[str, Tuple[nn.Module, int]]:
        # (feats, rois) of the last stage's extractor, which runs at test time in every
        # cascade: the boxes the soft masks belong to.
        extractor = _stages(self.model.roi_head.mask_roi_extractor)[-1]
        return dict(super().inputs_to_capture(), mask_rois=(extractor, 1))

    @property
    def stages_in_prediction(self) -> List[int]:
        """The stages whose masks the detector's prediction averages.

        Every stage for Mask R-CNN and Cascade Mask R-CNN (MMDetection's
        ``CascadeRoIHead.predict_mask`` averages the stages' mask
        probabilities); the last one for HTC, whose test path
        (``HybridTaskCascadeRoIHead._mask_forward(training=False)`` in
        MMDetection 3.3) runs every stage's head for the information flow but
        keeps only the last stage's prediction.
        """
        from mmdet.models.roi_heads import HybridTaskCascadeRoIHead
        if isinstance(self.model.roi_head, HybridTaskCascadeRoIHead):
            return [len(self.mask_heads) - 1]
        return list(range(len(self.mask_heads)))

    def soft_masks(self) -> Optional[Tuple[Tensor, Tensor]]:
        """Soft masks of the last pass's detections and their boxes.

        Returns:
            tuple | None: (N, K or 1, m, m) mask probabilities (the sigmoid of
            the mask head's logits, averaged over the stages the prediction
            uses) and (N, 5) RoIs ``(image index, x1, y1, x2, y2)`` in
            network-input pixels, in the order of the predicted instances;
            None if no mask head ran in the pass (MMDetection skips it when
            nothing was detected).
        """
        outputs = [self._captured.get(f'mask_logits_{stage}')
                   for stage in self.stages_in_prediction]
        if any(output is None for output in outputs):
            return None
        # HTC's heads return (logits, features) for the information flow.
        logits = [output[0] if isinstance(output, (tuple, list)) else output
                  for output in outputs]
        probabilities = sum(logit.sigmoid() for logit in logits) / len(logits)
        return probabilities, self.captured('mask_rois')
