"""Boxes: IoU and the one definition of "detected" (a COCO-style match).

A ground-truth (or given) box is detected when a prediction of its class,
scoring at least the run's threshold, is matched to it by :func:`match_detections`:
predictions by descending score, each to the free box of its class it overlaps
most, from IoU :data:`IOU_THR`, one box per prediction. Box records, the error
analysis and the report viewer all read this.
"""
from typing import Any, Sequence, Tuple

import numpy as np
import torch

#: IoU at which a prediction matches a ground-truth box (COCO's AP50).
IOU_THR = 0.5


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every pair of boxes: MMDetection's ``bbox_overlaps`` (areas ``w * h``, no +1).

    Args:
        a (np.ndarray): (N, 4) boxes.
        b (np.ndarray): (M, 4) boxes.

    Returns:
        np.ndarray: (N, M) IoU.
    """
    from mmdet.structures.bbox import bbox_overlaps
    a = torch.as_tensor(np.asarray(a, np.float64).reshape(-1, 4))
    b = torch.as_tensor(np.asarray(b, np.float64).reshape(-1, 4))
    return bbox_overlaps(a, b).numpy()


def match_detections(pred_boxes: Sequence, pred_labels: Sequence[int], pred_scores: Sequence[float],
                     gt_boxes: Sequence, gt_labels: Sequence[int],
                     iou_thr: float = IOU_THR) -> Tuple[np.ndarray, np.ndarray]:
    """Match predictions to ground-truth boxes, greedily by score, as COCO does.

    Predictions are taken by descending score (stable for equal scores); each
    is matched to the not yet matched ground-truth box of its class with the
    highest IoU, if that IoU is at least ``iou_thr``.

    Args:
        pred_boxes (Sequence): (N, 4) predicted boxes.
        pred_labels (Sequence[int]): (N,) their classes.
        pred_scores (Sequence[float]): (N,) their scores.
        gt_boxes (Sequence): (M, 4) ground-truth boxes.
        gt_labels (Sequence[int]): (M,) their classes.
        iou_thr (float): Smallest IoU of a match.

    Returns:
        tuple: ``(N,)`` index of the matched ground-truth box per prediction
        (-1: none) and ``(N,)`` IoU with it (0 when unmatched).
    """
    pred_labels, gt_labels = np.asarray(pred_labels, int), np.asarray(gt_labels, int)
    iou = box_iou(pred_boxes, gt_boxes)
    matched = np.full(len(pred_labels), -1)
    matched_iou = np.zeros(len(pred_labels))
    free = np.ones(len(gt_labels), bool)
    for p in np.argsort(-np.asarray(pred_scores, np.float64), kind='stable'):
        candidates = np.where(free & (gt_labels == pred_labels[p]), iou[p], -1.0)
        if len(candidates) and candidates.max() >= iou_thr:
            g = int(candidates.argmax())
            matched[p], matched_iou[p], free[g] = g, candidates[g], False
    return matched, matched_iou


def fill_boxes_from_masks(instances: Any) -> None:
    """Give instances predicted with masks but without boxes their masks' bounding boxes.

    SOLO and SOLOv2 have no box branch: every box they return is 0. Their
    masks' bounding boxes (MMDetection's ``mask2bbox``, x2/y2 exclusive)
    take their place, so that per-box maps, D-RISE's box similarity, the
    overlays and "detected" have boxes to work with. Instances with a box of
    any area are left as they are.

    Args:
        instances (InstanceData): A sample's ``pred_instances``, changed in place.
    """
    if not len(instances) or 'masks' not in instances or 'bboxes' not in instances:
        return
    boxes = instances.bboxes
    if ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).any():
        return
    from mmdet.structures.mask import mask2bbox
    masks = instances.masks
    masks = masks.to_tensor(torch.bool, boxes.device) if hasattr(masks, 'to_tensor') else masks
    instances.bboxes = mask2bbox(masks.bool()).to(boxes)
