"""Class maps of instance segmentation models (Mask R-CNN and kin)."""
from typing import TYPE_CHECKING, List, Optional, Tuple

import torch
from torch import Tensor

from ..geometry import CellGrid, paste_masks
from ..registry import EXPLAINERS
from ..utils.defaults import DEFAULT_SCORE_THR
from ..utils.errors import UnsupportedModelError
from .base import BaseExplainer, input_cell_grid, quarter_resolution_maps

if TYPE_CHECKING:
    from ..adapters import ModelAdapter


@EXPLAINERS.register_module()
class MaskClassMap(BaseExplainer):
    """Per class, the mean of the soft masks of the model's detections of that class.

    The mask head ran in the prediction pass; its per-RoI mask probabilities
    (for the RoI's predicted class) are pasted into their boxes on a grid at
    1/4 of the network input and averaged over the class's detections that
    score at least ``score_thr``; a class without one has a map of 0. (The
    reference product's method, with each mask taken for its own class and
    placed by its own box.)

    Args:
        score_thr (float): Detections below this score are left out.
        box_iou_thr (float): Per box (:meth:`explain_boxes`), the IoU with the
            target box above which a detection's mask counts.
    """

    algorithm = 'classwisesaliencymap'
    class_wise = True
    value_range = (0.0, 1.0)
    families = ('instance_segmentation',)
    maps_detections_only = True

    def __init__(self, score_thr: float = DEFAULT_SCORE_THR, box_iou_thr: float = 0.5) -> None:
        self.score_thr = score_thr
        self.box_iou_thr = box_iou_thr

    def check_supported(self, adapter: 'ModelAdapter') -> None:
        from ..adapters.instance_segmentation import unreadable_mask_head_reason
        super().check_supported(adapter)
        why = unreadable_mask_head_reason(adapter.model)
        if why:
            raise self.unsupported(adapter, why)

    def map_grid(self, adapter: 'ModelAdapter', size: Tuple[int, int]) -> CellGrid:
        return input_cell_grid(adapter, size)

    def _own_masks(self, adapter: 'ModelAdapter', samples: list
                   ) -> Optional[Tuple[Tensor, Tensor, Tensor, Tensor]]:
        """Each detection's soft mask for its own class, its RoI, label and score.

        Returns:
            tuple | None: (N, m, m) masks, (N, 5) RoIs, (N,) labels, (N,) scores
            of the batch's detections in prediction order; None if nothing
            was detected.

        Raises:
            UnsupportedModelError: If there are detections but the mask head's
                outputs did not arrive (its hooks did not fire).
        """
        soft_masks = adapter.soft_masks()
        detected = sum(len(s.pred_instances) for s in samples)
        if soft_masks is None:
            if detected:  # the hooks did not fire: never draw all-zero maps for detections
                raise UnsupportedModelError(
                    f'the mask head of {type(adapter.model).__name__} did not run as a module '
                    f'while it predicted {detected} instances; MaskClassMap cannot read its '
                    'masks. Use drise, activationmap or eigencam')
            return None
        masks, rois = soft_masks
        labels = torch.cat([s.pred_instances.labels for s in samples]).to(masks.device)
        scores = torch.cat([s.pred_instances.scores for s in samples]).to(masks.device)
        own = masks[torch.arange(len(masks), device=masks.device),
                    labels if masks.shape[1] > 1 else 0]
        return own, rois, labels, scores

    def explain(self, adapter: 'ModelAdapter', samples: Optional[list] = None,
                targets: Optional[List[Tensor]] = None) -> Tensor:
        _, maps = quarter_resolution_maps(adapter)
        size = tuple(maps.shape[-2:])
        detections = self._own_masks(adapter, samples)
        if detections is None:
            return maps
        own, rois, labels, scores = detections
        keep = scores >= self.score_thr
        if not keep.any():
            return maps
        own, rois, labels = own[keep], rois[keep], labels[keep]
        pasted = paste_masks(own, rois[:, 1:] / 4, size)
        # Mean per (image, class): sums and counts over the flattened (B * K) maps.
        slots = rois[:, 0].long() * maps.shape[1] + labels
        sums = maps.view(-1, *size).index_add(0, slots, pasted)
        counts = torch.bincount(slots, minlength=len(sums)).clamp_min(1).to(sums.dtype)
        return (sums / counts[:, None, None]).view_as(maps)

    def explain_boxes(self, adapter: 'ModelAdapter', samples: list, boxes: List[Tensor],
                      labels: List[Tensor]) -> List[Tensor]:
        """Per target box, the mean soft mask of the detections of its class that match it.

        A detection matches when its box overlaps the target with IoU >=
        ``box_iou_thr``, whatever its score (the evidence the detector had
        for that object, kept or not); a target nothing matches has a map of 0.
        """
        from mmdet.structures.bbox import bbox_overlaps
        _, maps = quarter_resolution_maps(adapter)
        size = tuple(maps.shape[-2:])
        detections = self._own_masks(adapter, samples)
        result = []
        for image, (image_boxes, image_labels) in enumerate(zip(boxes, labels)):
            out = maps.new_zeros(len(image_boxes), *size)
            if detections is not None and len(image_boxes):
                own, rois, labels_all, _ = detections
                mine = rois[:, 0].long() == image
                matches = (bbox_overlaps(image_boxes.to(rois), rois[mine, 1:]) >=
                           self.box_iou_thr) & (image_labels.to(rois.device)[:, None] ==
                                                labels_all[mine][None])
                if matches.any():
                    pasted = paste_masks(own[mine], rois[mine, 1:] / 4, size)  # (n, h, w)
                    weights = matches.to(pasted) / matches.sum(1, keepdim=True).clamp_min(1)
                    out = (weights @ pasted.flatten(1)).view(-1, *size)
            result.append(out)
        return result
