"""How to read class probabilities from each supported dense detection head.

Every head in :data:`SUPPORTED_HEADS` returns from ``forward()`` a tuple whose
first item is the per-level classification output (B, A*C, h, w) with A
anchors per position and C = ``head.cls_out_channels`` channels per anchor,
laid out anchor-major (channel ``a * C + c``), which is how MMDetection's
``predict_by_feat`` reads them. What differs per head is how those channels
become probabilities:

* sigmoid heads (``use_sigmoid_cls``): ``sigmoid`` per channel, C = K;
* softmax heads (SSD): ``softmax`` over the C = K + 1 channels of each
  anchor, the background channel (the last one) is dropped;
* YOLOX multiplies by its separate objectness output, as its box scores do;
* TOOD's ``forward`` already returns probabilities (the geometric mean of
  two sigmoids) and boxes in stride units, which its prediction reads as
  they are;
* YOLOv3 packs ``(x, y, w, h, objectness, classes)`` per anchor in one output
  (B, A*(5+K), h, w): class sigmoid times objectness sigmoid, as its
  ``predict_by_feat`` scores them;
* YOLACT's box head is a softmax head (background last) whose prediction
  always applies its fast NMS;
* FoveaBox and RepPoints score their points as sigmoid heads do and decode
  their boxes with their own ``_bbox_decode`` (from the point, with the
  level's base edge or stride), which is what their boxes are read with;
* CornerNet and CentripetalNet predict corners: a top-left and a
  bottom-right heatmap (B, K, h, w) of logits per stack; their prediction
  reads the last stack's, through a sigmoid, and scores a box by the mean of
  its two corners' probabilities. A class's map is the larger of the two
  probabilities at each cell: where the model sees a corner of the class.
  Cells are corners, not boxes, so these heads have no box per cell;
* CenterNet's ``forward`` returns its centre heatmap (B, K, h, w), already a
  sigmoid: the score its prediction gives the box of each cell's local
  maximum. A cell's box is centred at ``(cell + offset) * stride`` with the
  predicted size; training puts an object on the cell its centre falls in,
  so a cell's evidence sits at the middle of its block (no prior generator).

A subclass of a table head that overrides none of :data:`PREDICTION_METHODS`
(NAS-FCOS's head changes only its layers, FreeAnchor's and LD's only their
losses) computes its class scores as that head does and is read the same way.

Any other head whose prediction is ``BaseDenseHead``'s own (``predict_by_feat``
and ``_predict_by_feat_single`` not overridden: VFNet, DDOD, YOLOF,
AutoAssign, ...) is read by that prediction's rule, whatever its layers
compute: ``predict_by_feat(*forward(x))`` takes the first output as the
per-level class logits of every prior of its ``prior_generator`` (sigmoid or
softmax from ``use_sigmoid_cls``) and decodes the second with its
``bbox_coder``. Its score factor (the third output) is part of the class
probability when the head's own ``loss_by_feat`` calls it ``objectnesses``
(AutoAssign's implicit objectness: its classes are trained as ``class x
objectness``, as YOLOX's are) and is multiplied in; centerness and IoU
factors are box quality, not class, and stay out of the class maps as ATSS's
centerness does.
"""
import inspect
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..geometry import CellGrid
from ..utils.errors import UnsupportedModelError

#: Head class name -> index of its objectness output in ``forward()``'s
#: tuple, or None when it has none.
SUPPORTED_HEADS: Dict[str, Optional[int]] = {
    'ATSSHead': None,
    'RetinaHead': None,
    'RetinaSepBNHead': None,
    'FCOSHead': None,
    'GFLHead': None,
    'FSAFHead': None,
    'PAAHead': None,
    'RTMDetHead': None,
    'RTMDetSepBNHead': None,
    'SSDHead': None,
    'YOLOXHead': 2,
    'YOLOV3Head': None,  # objectness packed with the classes (see module docstring)
    'TOODHead': None,
    'CenterNetHead': None,
    'FoveaHead': None,
    'RepPointsHead': None,
    'YOLACTHead': None,  # softmax, background last; its prediction always applies fast NMS
    'CornerHead': None,
    'CentripetalHead': None,
}

#: Table heads whose ``forward()`` returns class probabilities, not logits.
PROBABILITY_OUTPUTS = ('TOODHead', 'CenterNetHead')
#: Table heads without priors: class heatmaps whose cells sit in the middle of their block.
HEATMAP_HEADS = ('CenterNetHead', 'CornerHead', 'CentripetalHead')
#: Heatmap heads whose cells are box corners: no box per cell.
CORNER_HEADS = ('CornerHead', 'CentripetalHead')
#: Table heads that decode boxes with their own ``_bbox_decode(priors, preds, x,
#: max_shape)``, and the level's ``x``.
OWN_BOX_DECODE: Dict[str, Callable[[nn.Module, int], Any]] = {
    'FoveaHead': lambda head, level: head.base_edge_list[level],
    'RepPointsHead': lambda head, level: head.point_strides[level],
}


#: What decides a head's outputs and how its prediction reads them.
PREDICTION_METHODS = ('forward', 'forward_single', 'predict_by_feat',
                      '_predict_by_feat_single', '_bbox_decode')

#: The rule of heads that predict with ``BaseDenseHead``'s own methods.
BASE_PREDICTION = 'BaseDenseHead'


def _predicts_as_base_dense_head(head: nn.Module) -> bool:
    """Whether a dense head scores and decodes its priors with ``BaseDenseHead``'s prediction."""
    from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
    cls = type(head)
    return isinstance(head, BaseDenseHead) and hasattr(head, 'prior_generator') and \
        hasattr(head, 'bbox_coder') and not getattr(head, 'custom_cls_channels', False) and \
        cls.predict_by_feat is BaseDenseHead.predict_by_feat and \
        cls._predict_by_feat_single is BaseDenseHead._predict_by_feat_single


def _nearest_table_head(head: Optional[nn.Module]) -> Tuple[Optional[str], str]:
    """The rule ``head``'s class scores follow (or None), and why not when None.

    The head's own class or the nearest table head among its ancestors, as
    long as no class on the way overrides one of :data:`PREDICTION_METHODS`;
    otherwise :data:`BASE_PREDICTION` for heads that predict with
    ``BaseDenseHead``'s own methods.
    """
    if head is None:
        return None, 'a detector without a dense bbox_head'
    why = type(head).__name__
    for cls in type(head).__mro__:
        if cls.__name__ in SUPPORTED_HEADS:
            return cls.__name__, ''
        overridden = [name for name in PREDICTION_METHODS if name in vars(cls)]
        if overridden:
            if any(c.__name__ in SUPPORTED_HEADS for c in type(head).__mro__):
                why = (f'{type(head).__name__}: {cls.__name__} overrides '
                       f'{", ".join(overridden)} of the table head it derives from')
            break
    if _predicts_as_base_dense_head(head):
        return BASE_PREDICTION, ''
    return None, why


def objectness_output(head: nn.Module) -> Optional[int]:
    """Index of the ``forward()`` output multiplied into the class probabilities, or None.

    The table's entry for table heads (YOLOX: 2); for heads read by
    :data:`BASE_PREDICTION`, 2 when their ``loss_by_feat`` names its third
    argument ``objectnesses``.
    """
    rule = supported_head_type(head)
    if rule != BASE_PREDICTION:
        return SUPPORTED_HEADS.get(rule)
    arguments = list(inspect.signature(type(head).loss_by_feat).parameters)[1:]
    return 2 if arguments[2:3] == ['objectnesses'] else None


def supported_head_type(head: Optional[nn.Module]) -> Optional[str]:
    """The head of :data:`SUPPORTED_HEADS` whose class scores ``head`` computes, or None.

    The head itself, or the nearest table head among its ancestors when no
    class in between overrides one of :data:`PREDICTION_METHODS`, or
    :data:`BASE_PREDICTION` for any head predicting with ``BaseDenseHead``'s
    own methods.
    """
    return _nearest_table_head(head)[0]


def unreadable_head_reason(head: Optional[nn.Module]) -> Optional[str]:
    """Why :func:`supported_head_type` cannot read ``head``'s class scores; None if it can."""
    supported, why = _nearest_table_head(head)
    if supported is not None:
        return None
    return (f'the class scores of {why} are not read per cell: its prediction is neither '
            "BaseDenseHead's own nor that of a head mmxai reads (docs/algorithms.md lists them)")


def check_head_predicts(head: Optional[nn.Module], detector_name: str) -> None:
    """Raise :class:`UnsupportedModelError` for a dense head that cannot predict at all.

    MMDetection 3.3's ``BaseDenseHead._predict_by_feat_single`` reads
    ``self.loss_cls``, which ``SSDHead`` never builds (it computes its loss
    itself): SSD's prediction, and so MMDetection's own ``tools/test.py``,
    stops with an ``AttributeError`` (open-mmlab/mmdetection#11305).
    """
    if head is None:
        return
    from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
    if isinstance(head, BaseDenseHead) and not hasattr(head, 'loss_cls') and \
            type(head)._predict_by_feat_single is BaseDenseHead._predict_by_feat_single:
        import mmdet
        raise UnsupportedModelError(
            f'{detector_name} cannot predict with MMDetection {mmdet.__version__}: '
            f'{type(head).__name__} has no loss_cls, which BaseDenseHead._predict_by_feat_single '
            'reads (an MMDetection bug, open-mmlab/mmdetection#11305; its own tools/test.py '
            'fails the same way)')


def anchor_class_probabilities(head: nn.Module, head_outputs: Any) -> List[Tensor]:
    """Per-level class probabilities of every anchor (B, A, K, h, w).

    Args:
        head (nn.Module): The detector's ``bbox_head``.
        head_outputs: What ``head.forward()`` returned in this forward pass.

    Returns:
        list[Tensor]: One (B, A, K, h_l, w_l) tensor per level.
    """
    rule = supported_head_type(head)
    if rule == 'YOLOV3Head':
        return [_yolov3_probabilities(head, pred_map) for pred_map in head_outputs[0]]
    if rule in CORNER_HEADS:  # the last stack's corners, as its prediction reads them
        corners = torch.maximum(head_outputs[0][-1], head_outputs[1][-1]).sigmoid()
        return [corners.unsqueeze(1)]
    objectness_index = objectness_output(head)
    channels = getattr(head, 'cls_out_channels', head.num_classes)
    priors = getattr(getattr(head, 'prior_generator', None), 'num_base_priors', None)
    levels = []
    for level, cls_score in enumerate(head_outputs[0]):
        if not isinstance(cls_score, Tensor) or cls_score.dim() != 4 or \
                (priors and cls_score.shape[1] != priors[level] * channels):
            raise UnsupportedModelError(
                f'{type(head).__name__}: its class output of level {level} is not '
                f'(B, priors x {channels}, h, w), so its scores cannot be placed on its priors')
        batch, _, height, width = cls_score.shape
        logits = cls_score.reshape(batch, -1, channels, height, width)
        if rule in PROBABILITY_OUTPUTS:
            probs = logits
        elif head.use_sigmoid_cls:
            probs = logits.sigmoid()
        else:
            probs = F.softmax(logits, dim=2)[:, :, :head.num_classes]
        if objectness_index is not None:
            probs = probs * head_outputs[objectness_index][level].sigmoid().unsqueeze(1)
        levels.append(probs)
    return levels


def _yolov3_probabilities(head: nn.Module, pred_map: Tensor) -> Tensor:
    """(B, A, K, h, w) class x objectness probabilities of one YOLOv3 level."""
    batch, _, height, width = pred_map.shape
    attributes = pred_map.reshape(batch, head.num_base_priors, head.num_attrib, height, width)
    return attributes[:, :, 5:].sigmoid() * attributes[:, :, 4:5].sigmoid()


def class_probability_levels(head: nn.Module, head_outputs: Any) -> List[Tensor]:
    """Per-level class probabilities (B, K, h, w): the max over anchors.

    Args:
        head (nn.Module): The detector's ``bbox_head``.
        head_outputs: What ``head.forward()`` returned in this forward pass.

    Returns:
        list[Tensor]: One (B, K, h_l, w_l) tensor per level.
    """
    return [probs.amax(dim=1) for probs in anchor_class_probabilities(head, head_outputs)]


def decoded_prior_boxes(head: nn.Module, head_outputs: Any, image: int,
                        max_shape: Optional[Tuple[int, int]] = None,
                        input_shape: Optional[Tuple[int, int]] = None) -> List[Tensor]:
    """The box each prior of one image regresses to, decoded as the head's own prediction does.

    Most heads decode with their ``bbox_coder`` from the priors (MMDetection's
    ``BaseDenseHead._predict_by_feat_single``); GFL first integrates its
    distance distributions and decodes from anchor centres, YOLOX decodes
    with its own ``_bbox_decode`` from strided points.

    Args:
        head (nn.Module): The detector's ``bbox_head``.
        head_outputs: What ``head.forward()`` returned in this forward pass.
        image (int): Index of the image in the batch.
        max_shape (tuple, optional): (H, W) boxes are clipped to, as the head does.
        input_shape (tuple, optional): (H, W) of the padded batch, whose ratio
            to the heatmap CenterNet scales its boxes by (default ``max_shape``).

    Returns:
        list[Tensor]: Per level, (h * w * A, 4) boxes ``x1, y1, x2, y2`` in
        network-input pixels, in the order of the priors (cell-major, then
        anchor), which is the order of :func:`anchor_class_probabilities`'s
        (A, h, w) permuted to (h, w, A).
    """
    rule = supported_head_type(head)  # walks the head's class ancestry: once
    if rule == 'YOLOV3Head':  # decoded from sigmoid xy, never clipped
        pred_maps = head_outputs[0]
        priors = head.prior_generator.grid_priors([tuple(p.shape[-2:]) for p in pred_maps],
                                                  dtype=pred_maps[0].dtype,
                                                  device=pred_maps[0].device)
        boxes = []
        for prior, pred, stride in zip(priors, pred_maps, head.featmap_strides):
            pred = pred[image].permute(1, 2, 0).reshape(-1, head.num_attrib)
            offsets = torch.cat([pred[:, :2].sigmoid(), pred[:, 2:4]], dim=1)
            boxes.append(head.bbox_coder.decode(prior, offsets, stride))
        return boxes
    if rule in CORNER_HEADS:
        raise UnsupportedModelError(f'{type(head).__name__} predicts box corners, not a box per '
                                    'cell: its cells have no boxes to match')
    if rule in HEATMAP_HEADS:
        return [_heatmap_boxes(wh[image], offset[image], input_shape or max_shape)
                for wh, offset in zip(head_outputs[1], head_outputs[2])]
    bbox_preds = head_outputs[1]
    sizes = [tuple(pred.shape[-2:]) for pred in bbox_preds]
    device, dtype = bbox_preds[0].device, bbox_preds[0].dtype
    if rule == 'YOLOXHead':
        priors = head.prior_generator.grid_priors(sizes, dtype=dtype, device=device,
                                                  with_stride=True)
        return [head._bbox_decode(prior, pred[image].permute(1, 2, 0).reshape(-1, 4))
                for prior, pred in zip(priors, bbox_preds)]
    if rule == 'TOODHead':  # boxes in stride units, not clipped
        return [pred[image].permute(1, 2, 0).reshape(-1, 4) * stride[0]
                for pred, stride in zip(bbox_preds, head.prior_generator.strides)]
    priors = head.prior_generator.grid_priors(sizes, dtype=dtype, device=device)
    if rule in OWN_BOX_DECODE:
        level_argument = OWN_BOX_DECODE[rule]
        return [head._bbox_decode(prior, pred[image].permute(1, 2, 0).reshape(-1, 4),
                                  level_argument(head, level), max_shape)
                for level, (prior, pred) in enumerate(zip(priors, bbox_preds))]
    boxes = []
    for level, (prior, pred) in enumerate(zip(priors, bbox_preds)):
        pred = pred[image].permute(1, 2, 0)
        if hasattr(head, 'integral'):  # GFL: a distribution over each side's distance
            stride = head.prior_generator.strides[level][0]
            distances = head.integral(pred.reshape(-1, pred.shape[-1])) * stride
            boxes.append(head.bbox_coder.decode(head.anchor_center(prior), distances,
                                                max_shape=max_shape))
        else:
            boxes.append(head.bbox_coder.decode(
                prior, pred.reshape(-1, head.bbox_coder.encode_size), max_shape=max_shape))
    return boxes


def _heatmap_boxes(wh: Tensor, offset: Tensor, input_shape: Tuple[int, int]) -> Tensor:
    """(h * w, 4) boxes of every heatmap cell, as ``CenterNetHead._decode_heatmap`` decodes them."""
    height, width = wh.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(height, dtype=wh.dtype, device=wh.device),
                            torch.arange(width, dtype=wh.dtype, device=wh.device), indexing='ij')
    centre_x, centre_y = xs + offset[0], ys + offset[1]
    ratio_x, ratio_y = input_shape[1] / width, input_shape[0] / height
    boxes = torch.stack([(centre_x - wh[0] / 2) * ratio_x, (centre_y - wh[1] / 2) * ratio_y,
                         (centre_x + wh[0] / 2) * ratio_x, (centre_y + wh[1] / 2) * ratio_y], -1)
    return boxes.reshape(-1, 4)


def prior_grids(prior_generator: Any) -> List[CellGrid]:
    """Where each level's cells sit, read from MMDetection's own prior generator.

    One rule for every generator: the priors it makes for a 2 x 2 feature map
    of each level give the centre of cell (0, 0) (the grid's origin) and, by
    its distance to cells (0, 1) and (1, 0), the stride. Anchors (boxes) are
    centred on their box, points (FCOS, YOLOX, RTMDet) are the point; the
    anchors of one cell share one centre.

    Args:
        prior_generator: An ``AnchorGenerator``, ``SSDAnchorGenerator``,
            ``MlvlPointGenerator`` or another generator with ``grid_priors``.

    Returns:
        list[CellGrid]: One grid per level.
    """
    levels = prior_generator.grid_priors([(2, 2)] * prior_generator.num_levels,
                                         dtype=torch.float64, device='cpu')
    grids = []
    for priors in levels:
        centres = priors[:, :2] if priors.shape[1] == 2 else (priors[:, :2] + priors[:, 2:4]) / 2
        centres = centres.reshape(4, -1, 2).mean(1)  # cells (0, 0), (0, 1), (1, 0), (1, 1)
        origin_x, origin_y = centres[0].tolist()
        grids.append(CellGrid(stride_y=float(centres[2, 1]) - origin_y,
                              stride_x=float(centres[1, 0]) - origin_x,
                              origin_y=origin_y, origin_x=origin_x))
    return grids
