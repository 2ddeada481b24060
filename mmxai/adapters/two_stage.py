"""The adapter of two-stage detectors: the RoI head's class probabilities of every proposal.

In a two-stage detector's prediction the RoI head scores every RPN proposal:
``bbox_roi_extractor`` pools the features inside the RoI (RoIAlign samples
only inside the box) and ``bbox_head`` turns them into K + 1 class scores.
Forward hooks on those modules keep each stage's RoIs and scores; nothing
runs again. The probabilities are combined as MMDetection's own prediction
combines them (see :meth:`TwoStageDetectorAdapter.roi_class_probabilities`).
"""
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..utils.errors import UnsupportedModelError
from .detector import DetectorAdapter


def _stages(modules: Optional[nn.Module]) -> List[nn.Module]:
    """The per-stage modules of a cascade (an ``nn.ModuleList``), or the one module."""
    if modules is None:
        return []
    return list(modules) if isinstance(modules, nn.ModuleList) else [modules]


def has_roi_box_head(model: nn.Module) -> bool:
    """Whether a detector scores proposals with an RoI box head (a two-stage detector)."""
    roi_head = getattr(model, 'roi_head', None)
    return getattr(roi_head, 'bbox_head', None) is not None and \
        getattr(roi_head, 'bbox_roi_extractor', None) is not None


def scores_last_stage_only(roi_head: nn.Module) -> bool:
    """Whether an RoI head predicts from its last stage's scores alone (``SparseRoIHead``)."""
    from mmdet.models.roi_heads import SparseRoIHead
    return isinstance(roi_head, SparseRoIHead)


def unreadable_roi_head_reason(model: nn.Module) -> Optional[str]:
    """Why the RoI head's class scores are not one per proposal and stage; None if they are.

    Supported: MMDetection's ``StandardRoIHead`` and ``CascadeRoIHead`` and
    their descendants, which score each proposal once per stage (the
    query-based ``SparseRoIHead`` of Sparse R-CNN included: one RoI per learned
    query and stage); not TridentNet's per-branch batch or CrowdDet's several
    instances per RoI.
    """
    from mmdet.models.roi_heads import (
        CascadeRoIHead,
        MultiInstanceRoIHead,
        StandardRoIHead,
        TridentRoIHead,
    )
    roi_head = getattr(model, 'roi_head', None)
    why = None
    if not isinstance(roi_head, (StandardRoIHead, CascadeRoIHead)):
        why = f'its RoI head {type(roi_head).__name__} is not a StandardRoIHead or CascadeRoIHead'
    elif isinstance(roi_head, TridentRoIHead):
        why = 'TridentRoIHead scores each image once per branch'
    elif isinstance(roi_head, MultiInstanceRoIHead):
        why = 'MultiInstanceRoIHead predicts several instances per RoI'
    return why


class TwoStageDetectorAdapter(DetectorAdapter):
    """Adapter for two-stage detectors: feature maps and each stage's RoI scores.

    Per stage, the RoIs the box head read (the input of its
    ``bbox_roi_extractor``) and the class scores it gave them (the first
    output of its ``bbox_head``) are kept, paired at the head's call: an
    extractor shared with the mask head runs again after it.
    """

    family = 'two_stage_detection'

    @property
    def box_stages(self) -> List[Tuple[nn.Module, nn.Module]]:
        """(``bbox_roi_extractor``, ``bbox_head``) of each stage (one without a cascade)."""
        roi_head = self.model.roi_head
        extractors, heads = _stages(roi_head.bbox_roi_extractor), _stages(roi_head.bbox_head)
        if len(extractors) == 1 and len(heads) > 1:
            extractors = extractors * len(heads)
        return list(zip(extractors, heads))

    @contextmanager
    def capture(self) -> Iterator[None]:
        with super().capture():
            calls: List[Dict[str, Any]] = []
            pending: Dict[int, Tensor] = {}
            handles = []
            for stage, (extractor, head) in enumerate(self.box_stages):
                def keep_rois(_module: nn.Module, args: Any, stage: int = stage) -> None:
                    pending[stage] = args[1]

                def keep_scores(_module: nn.Module, _args: Any, output: Any,
                                stage: int = stage) -> None:
                    outputs = output if isinstance(output, (tuple, list)) else (output,)
                    calls.append(dict(stage=stage, rois=pending.get(stage),
                                      cls_score=outputs[0],
                                      bbox_pred=outputs[1] if len(outputs) > 1 else None))
                handles.append(extractor.register_forward_pre_hook(keep_rois))
                handles.append(head.register_forward_hook(keep_scores))
            self._captured['roi_calls'] = calls
            try:
                yield
            finally:
                for handle in handles:
                    handle.remove()

    def _stage_calls(self) -> Optional[List[Dict[str, Any]]]:
        """Each stage's captured call, in stage order; None if the box head never ran."""
        calls = self.captured('roi_calls')
        if not calls:  # no proposals: MMDetection skips the RoI head
            return None
        stages = [call['stage'] for call in calls]
        if stages != list(range(len(self.box_stages))):
            raise UnsupportedModelError(
                f'{type(self.model).__name__}: its box heads ran in the order {stages} in one '
                'prediction, not once per stage; their scores cannot be placed')
        return calls

    def roi_class_probabilities(self) -> Optional[Tuple[Tensor, Tensor, Any]]:
        """Every proposal's class probabilities, as the detector's own prediction computes them.

        One stage (Faster R-CNN and kin): the box head's scores through its
        own activation (``loss_cls.get_activation`` for losses with custom
        class channels, such as Seesaw; otherwise softmax over K + 1),
        background (the last column) dropped, as ``BBoxHead.predict_by_feat``
        does. Cascades: the raw scores of all stages averaged, then the last
        stage's activation, as ``CascadeRoIHead._refine_roi`` and the last
        head's ``predict_by_feat`` do; the RoIs are the last stage's, the ones
        the predicted boxes are regressed from. Sparse R-CNN
        (``SparseRoIHead``): the last stage's scores alone, through a sigmoid
        (softmax without background for heads not trained with a sigmoid
        loss), as ``SparseRoIHead.predict_bbox`` does; one RoI per learned
        query.

        Returns:
            tuple | None: (N, 5) RoIs ``(image index, x1, y1, x2, y2)`` in
            network-input pixels, (N, K) probabilities, and the last stage's
            box regression output for those RoIs; None if no proposal was scored.

        Raises:
            UnsupportedModelError: If the captured scores do not fit the RoIs.
        """
        calls = self._stage_calls()
        if calls is None:
            return None
        head = self.box_stages[-1][1]
        rois = calls[-1]['rois']
        # Sparse R-CNN's DIIHead scores (images, queries, classes); rows follow the RoIs.
        scores = [call['cls_score'].flatten(0, -2) if isinstance(call['cls_score'], Tensor)
                  and call['cls_score'].dim() == 3 else call['cls_score'] for call in calls]
        bbox_pred = calls[-1]['bbox_pred']
        if isinstance(bbox_pred, Tensor) and bbox_pred.dim() == 3:
            bbox_pred = bbox_pred.flatten(0, -2)
        if rois is None or any(not isinstance(s, Tensor) or s.dim() != 2 or
                               s.shape != scores[-1].shape for s in scores) \
                or len(scores[-1]) != len(rois):
            raise UnsupportedModelError(
                f'{type(self.model).__name__}: its box head scores do not match the RoIs it read')
        background = True
        if scores_last_stage_only(self.model.roi_head):
            logits = scores[-1]
            background = not head.loss_cls.use_sigmoid
            probabilities = F.softmax(logits, dim=-1) if background else logits.sigmoid()
        else:
            logits = sum(scores) / len(scores)
            if getattr(head, 'custom_cls_channels', False):
                probabilities = head.loss_cls.get_activation(logits)
            else:
                probabilities = F.softmax(logits, dim=-1)
        if probabilities.shape[1] != head.num_classes + background:
            raise UnsupportedModelError(
                f'{type(self.model).__name__}: {type(head).__name__} gives '
                f'{probabilities.shape[1]} scores per RoI, not {head.num_classes} classes' +
                (' + background' if background else ''))
        return rois, probabilities[:, :head.num_classes], bbox_pred

    def regressed_boxes(self, rois: Tensor, bbox_pred: Any, labels: Tensor,
                        max_shape: Optional[Tuple[int, int]] = None) -> Tensor:
        """The box each RoI regresses to for a class, decoded as the last head predicts.

        Args:
            rois (Tensor): (N, 5) RoIs of :meth:`roi_class_probabilities`.
            bbox_pred: The last stage's regression output for them.
            labels (Tensor): (N,) the class to decode each RoI for.
            max_shape (tuple, optional): (H, W) the boxes are clipped to.

        Returns:
            Tensor: (N, 4) boxes in network-input pixels (the RoIs themselves
            for heads without regression, such as Grid R-CNN's).

        Raises:
            UnsupportedModelError: For regression outputs that are not one
                tensor of deltas (SABL's bucketed boxes).
        """
        head = self.box_stages[-1][1]
        if bbox_pred is None:
            return rois[:, 1:]
        if not isinstance(bbox_pred, Tensor):
            raise UnsupportedModelError(f'{type(head).__name__} regresses boxes as '
                                        f'{type(bbox_pred).__name__}, not deltas; its per-box '
                                        'maps are not supported')
        size = head.bbox_coder.encode_size
        if not head.reg_class_agnostic:
            index = torch.arange(size, device=labels.device)[None] + labels[:, None] * size
            bbox_pred = bbox_pred.gather(1, index)
        return head.bbox_coder.decode(rois[:, 1:], bbox_pred[:, :size], max_shape=max_shape)

    @property
    def num_classes(self) -> int:
        return self.box_stages[-1][1].num_classes
