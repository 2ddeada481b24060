"""The adapter of detectors with an RoI mask head (Mask R-CNN and kin)."""
from typing import Dict, Tuple

from torch import Tensor, nn

from .detector import DetectorAdapter


def has_roi_mask_head(model: nn.Module) -> bool:
    """Whether a detector predicts instance masks with an RoI mask head."""
    roi_head = getattr(model, 'roi_head', None)
    return getattr(roi_head, 'mask_head', None) is not None and \
        getattr(roi_head, 'mask_roi_extractor', None) is not None


class InstanceSegmentationAdapter(DetectorAdapter):
    """Adapter for detectors with an RoI mask head: also keeps the soft masks.

    The mask head's logits and the RoIs they were computed for are captured in
    the prediction pass, in the order of the predicted instances.
    """

    family = 'instance_segmentation'

    def modules_to_capture(self) -> Dict[str, nn.Module]:
        return dict(super().modules_to_capture(), mask_logits=self.model.roi_head.mask_head)

    def inputs_to_capture(self) -> Dict[str, Tuple[nn.Module, int]]:
        # (feats, rois): the boxes the soft masks belong to.
        return dict(super().inputs_to_capture(),
                    mask_rois=(self.model.roi_head.mask_roi_extractor, 1))

    def soft_masks(self) -> Tuple[Tensor, Tensor]:
        """Soft masks of the last pass's detections and their boxes.

        Returns:
            tuple: (N, K or 1, m, m) mask probabilities (sigmoid of the mask
            head's logits) and (N, 5) RoIs ``(image index, x1, y1, x2, y2)`` in
            network-input pixels, in the order of the predicted instances.
        """
        if 'mask_logits' not in self._captured:  # no detection at all: the head did not run
            inputs = self.captured('backbone_input')
            return inputs.new_zeros(0, 1, 1, 1), inputs.new_zeros(0, 5)
        return self.captured('mask_logits').sigmoid(), self.captured('mask_rois')
