"""PredictedMaskClassMap: class maps of instance segmenters from the masks they predict."""
from typing import TYPE_CHECKING, List, Optional, Tuple

import torch
from torch import Tensor

from ..geometry import boxes_to_input, masks_to_input
from ..registry import EXPLAINERS
from ..utils.errors import UnsupportedModelError
from .base import quarter_resolution_maps
from .mask_class_map import MaskClassMap

if TYPE_CHECKING:
    from ..adapters import ModelAdapter


def _instances(adapter: 'ModelAdapter', sample) -> Tuple[Tensor, Tensor, Tensor]:
    """One sample's predicted masks, labels and scores.

    Raises:
        UnsupportedModelError: If there are detections without masks.
    """
    instances = sample.pred_instances
    if len(instances) and 'masks' not in instances:
        raise UnsupportedModelError(
            f'{type(adapter.model).__name__} predicted {len(instances)} instances without '
            'masks (pred_instances.masks); its class maps are read from them')
    if not len(instances):
        empty = instances.scores.new_zeros(0)
        return empty.new_zeros(0, 1, 1), empty.long(), empty
    return instances.masks, instances.labels, instances.scores


@EXPLAINERS.register_module()
class PredictedMaskClassMap(MaskClassMap):
    """Per class, the mean of the masks the model predicts for that class.

    For instance segmenters that make their masks inside their own
    ``predict`` (SOLO, SOLOv2, CondInst, RTMDet-Ins, Mask2Former, ...): the
    masks they return (``pred_instances.masks``, thresholded by the model's own
    ``mask_thr``) of the class's detections scoring at least ``score_thr``
    are averaged, as :class:`MaskClassMap` averages the soft masks of the
    Mask R-CNN family; a class without one has a map of 0. The masks are
    brought onto the network input (:func:`mmxai.geometry.masks_to_input`),
    so a map holds, per cell at 1/4 of the input, the share of the cell the
    class's masks cover.

    Per box (:meth:`explain_boxes`), the mean mask of the detections of the
    box's class whose box overlaps it with IoU >= ``box_iou_thr``, whatever
    their score (SOLO's and SOLOv2's boxes are their masks' bounding boxes:
    see :func:`mmxai.boxes.fill_boxes_from_masks`).

    Args:
        score_thr (float): Detections below this score are left out.
        box_iou_thr (float): IoU of a detection's box with a target box above
            which its mask counts for that box.
    """

    families = ('mask_prediction',)

    def explain(self, adapter: 'ModelAdapter', samples: Optional[list] = None,
                targets: Optional[List[Tensor]] = None) -> Tensor:
        _, maps = quarter_resolution_maps(adapter)
        size = tuple(maps.shape[-2:])
        for image, sample in enumerate(samples):
            masks, labels, scores = _instances(adapter, sample)
            keep = scores >= self.score_thr
            if not keep.any():
                continue
            on_input = masks_to_input(masks[keep].to(maps.device), sample.metainfo, size,
                                      adapter.input_shape)
            labels = labels[keep].to(maps.device).long()
            sums = maps[image].index_add(0, labels, on_input)
            counts = torch.bincount(labels, minlength=len(sums)).clamp_min(1).to(sums)
            maps[image] = sums / counts[:, None, None]
        return maps

    def explain_boxes(self, adapter: 'ModelAdapter', samples: list, boxes: List[Tensor],
                      labels: List[Tensor]) -> List[Tensor]:
        from mmdet.structures.bbox import bbox_overlaps
        _, maps = quarter_resolution_maps(adapter)
        size = tuple(maps.shape[-2:])
        result = []
        for sample, image_boxes, image_labels in zip(samples, boxes, labels):
            out = maps.new_zeros(len(image_boxes), *size)
            masks, detected, _ = _instances(adapter, sample)
            if len(detected) and len(image_boxes):
                own_boxes = boxes_to_input(sample.pred_instances.bboxes.float(), sample.metainfo)
                matches = (bbox_overlaps(image_boxes.to(own_boxes), own_boxes) >=
                           self.box_iou_thr) & (image_labels.to(detected.device)[:, None] ==
                                                detected[None])
                if matches.any():
                    on_input = masks_to_input(masks.to(maps.device), sample.metainfo, size,
                                              adapter.input_shape)
                    weights = matches.to(on_input) / matches.sum(1, keepdim=True).clamp_min(1)
                    out = (weights @ on_input.flatten(1)).view(-1, *size)
            result.append(out)
        return result
