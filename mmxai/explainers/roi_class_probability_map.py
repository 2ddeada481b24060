"""RoIClassProbabilityMap: class maps of two-stage detectors from their RoI head's scores."""
from typing import TYPE_CHECKING, List, Optional, Tuple

import torch
from torch import Tensor

from ..geometry import CellGrid
from ..registry import EXPLAINERS
from .base import BaseExplainer, input_cell_grid, quarter_resolution_maps

if TYPE_CHECKING:
    from ..adapters import ModelAdapter

def cell_spans(boxes: Tensor, grid: CellGrid, size: Tuple[int, int]) -> Tensor:
    """The rows and columns of map cells whose centres lie inside each box.

    A box too small to hold a cell centre gets the cell nearest its centre,
    so every box reaches the map.

    Args:
        boxes (Tensor): (N, 4) ``x1, y1, x2, y2`` on the network input.
        grid (CellGrid): Where the map's cells sit.
        size (tuple): (h, w) of the map.

    Returns:
        Tensor: (N, 4) long ``row_start, row_stop, col_start, col_stop`` (stop
        exclusive).
    """
    grid = CellGrid(*grid)
    boxes = boxes.double()
    spans = []
    for low, high, origin, stride, cells in ((boxes[:, 1], boxes[:, 3], grid.origin_y,
                                              grid.stride_y, size[0]),
                                             (boxes[:, 0], boxes[:, 2], grid.origin_x,
                                              grid.stride_x, size[1])):
        start = torch.ceil((low - origin) / stride).clamp(0, cells)
        stop = (torch.floor((high - origin) / stride) + 1).clamp(0, cells)
        nearest = ((low + high) / 2 - origin).div(stride).round().clamp(0, cells - 1)
        empty = stop <= start
        spans += [torch.where(empty, nearest, start), torch.where(empty, nearest + 1, stop)]
    return torch.stack(spans, dim=1).long()


def max_over_boxes(values: Tensor, spans: Tensor, size: Tuple[int, int]) -> Tensor:
    """Per cell, the largest value of the boxes that cover it (0 where none does).

    Each box raises the cells of its span to its value (an in-place maximum
    over the span only), so the work is the boxes' area, not boxes x cells.

    Args:
        values (Tensor): (T, N) a value per map and box.
        spans (Tensor): (N, 4) cell spans of the boxes (:func:`cell_spans`).
        size (tuple): (h, w) of the maps.

    Returns:
        Tensor: (T, h, w).
    """
    out = values.new_zeros(values.shape[0], *size)
    columns = values.T[:, :, None, None]  # (N, T, 1, 1)
    for box, (row_start, row_stop, col_start, col_stop) in enumerate(spans.tolist()):
        span = out[:, row_start:row_stop, col_start:col_stop]
        torch.maximum(span, columns[box], out=span)
    return out


@EXPLAINERS.register_module()
class RoIClassProbabilityMap(BaseExplainer):
    """Class-wise maps of two-stage detectors from the RoI head's scores of every proposal.

    The RoI head already scored every proposal in the prediction pass (see
    :meth:`mmxai.adapters.TwoStageDetectorAdapter.roi_class_probabilities`
    for the detector's own combination of softmax, background and cascade
    stages). Each proposal's class probability is placed on its RoI: the box
    head saw nothing but the RoIAlign samples taken inside that box, so that
    is where its evidence was read (the RPN anchor cell that seeded the
    proposal produced only objectness, not the class). A cell of a map at
    1/4 of the network input takes the largest probability of the class
    over the RoIs whose box contains its centre, 0 where none does. So a
    predicted box's own RoI lifts the map inside it to at least the box's
    score, and the map of a class is its best proposal's probability at
    every place.

    Per box (:meth:`explain_boxes`), the same map from only the RoIs whose
    own regressed box (for the box's class, decoded as the last stage
    predicts) overlaps the box with IoU >= ``box_iou_thr``.

    Args:
        box_iou_thr (float): IoU of an RoI's regressed box with a target box
            above which the RoI is evidence for that box.
    """

    algorithm = 'classwisesaliencymap'
    class_wise = True
    value_range = (0.0, 1.0)
    families = ('two_stage_detection',)

    def __init__(self, box_iou_thr: float = 0.5) -> None:
        self.box_iou_thr = box_iou_thr

    def check_supported(self, adapter: 'ModelAdapter') -> None:
        from ..adapters.two_stage import unreadable_roi_head_reason
        super().check_supported(adapter)
        why = unreadable_roi_head_reason(adapter.model)
        if why:
            raise self.unsupported(adapter, why)

    def map_grid(self, adapter: 'ModelAdapter', size: Tuple[int, int]) -> CellGrid:
        return input_cell_grid(adapter, size)

    def explain(self, adapter: 'ModelAdapter', samples: Optional[list] = None,
                targets: Optional[List[Tensor]] = None) -> Tensor:
        _, maps = quarter_resolution_maps(adapter)
        found = adapter.roi_class_probabilities()
        if found is None:
            return maps
        rois, probabilities, _ = found
        size = tuple(maps.shape[-2:])
        spans = cell_spans(rois[:, 1:], self.map_grid(adapter, size), size)
        for image in range(len(maps)):
            mine = rois[:, 0].long() == image
            classes = torch.arange(maps.shape[1], device=maps.device) if targets is None \
                else targets[image].to(maps.device).long()
            if len(classes) and mine.any():
                maps[image, classes] = max_over_boxes(
                    probabilities[mine][:, classes].T.to(maps), spans[mine], size)
        return maps

    def explain_boxes(self, adapter: 'ModelAdapter', samples: list, boxes: List[Tensor],
                      labels: List[Tensor]) -> List[Tensor]:
        from mmdet.structures.bbox import bbox_overlaps
        _, maps = quarter_resolution_maps(adapter)
        size = tuple(maps.shape[-2:])
        found = adapter.roi_class_probabilities()
        result = []
        for image, (image_boxes, image_labels) in enumerate(zip(boxes, labels)):
            out = maps.new_zeros(len(image_boxes), *size)
            if found is not None and len(image_boxes):
                rois, probabilities, bbox_pred = found
                mine = torch.nonzero(rois[:, 0].long() == image)[:, 0]
                if len(mine):
                    spans = cell_spans(rois[mine, 1:], self.map_grid(adapter, size), size)
                    image_labels = image_labels.to(rois.device).long()
                    shape = samples[image].metainfo.get('img_shape')
                    values = []
                    pred = bbox_pred[mine] if isinstance(bbox_pred, Tensor) else bbox_pred
                    for box, label in zip(image_boxes.to(rois), image_labels):
                        regressed = adapter.regressed_boxes(
                            rois[mine], pred, label.repeat(len(mine)),
                            tuple(shape[:2]) if shape else None)
                        evidence = bbox_overlaps(regressed, box[None])[:, 0] >= self.box_iou_thr
                        values.append(probabilities[mine, label] * evidence)
                    out = max_over_boxes(torch.stack(values).to(maps), spans, size)
            result.append(out)
        return result
