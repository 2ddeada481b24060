"""QueryClassMap: class maps of DETR-style detectors from their own queries and attention."""
from typing import TYPE_CHECKING, List, Optional, Tuple

import torch
from torch import Tensor

from ..geometry import merge_levels
from ..registry import EXPLAINERS
from ..utils.errors import UnsupportedModelError
from .base import BaseExplainer

if TYPE_CHECKING:
    from ..adapters import ModelAdapter

SOURCES = ('auto', 'attention', 'encoder')


@EXPLAINERS.register_module()
class QueryClassMap(BaseExplainer):
    """Class-wise maps of query-based detectors (DETR, Deformable DETR, DINO, ...), one pass.

    Two sources, both read from the prediction pass (see
    :class:`~mmxai.adapters.query_detector.QueryDetectorAdapter`):

    - ``'attention'`` (every DETR-style detector): per class c,
      ``M_c = sum_q p_q(c) * A_q``, with ``p_q`` query q's final class
      probabilities and ``A_q`` the last decoder layer's cross-attention of q
      over the image tokens, averaged over heads. Each level's tokens become
      its map, divided by its cell area relative to the finest level (so a
      value is attention per finest cell), and the levels are added.
    - ``'encoder'`` (two-stage models: DINO, DDQ): the encoder's per-token
      class probabilities, which pick the decoder's queries, as a multi-level
      map merged like a dense head's (values in [0, 1]). Two-stage
      Deformable DETR trains those scores as objectness, not classes: refused.

    ``'auto'`` uses the encoder where its scores are class scores, attention
    elsewhere. Per box (:meth:`explain_boxes`): the attention of the queries
    whose own box overlaps the box with IoU >= ``box_iou_thr``, weighted by
    their probability of the box's class (the query that predicted a box is
    among them).

    Args:
        source (str): ``'auto'``, ``'attention'`` or ``'encoder'``.
        box_iou_thr (float): IoU of a query's box with a target box above
            which the query is evidence for that box.
    """

    algorithm = 'classwisesaliencymap'
    class_wise = True
    families = ('query_detection',)

    def __init__(self, source: str = 'auto', box_iou_thr: float = 0.5) -> None:
        if source not in SOURCES:
            raise ValueError(f'source must be one of {SOURCES}, got {source!r}')
        self.source = source
        self.box_iou_thr = box_iou_thr

    @property
    def value_range(self) -> Optional[Tuple[float, float]]:  # type: ignore[override]
        """Probabilities for encoder maps; attention sums have no fixed scale."""
        return (0.0, 1.0) if self.source == 'encoder' else None

    def resolved_source(self, adapter: 'ModelAdapter') -> str:
        """The source ``'auto'`` stands for on this model."""
        if self.source != 'auto':
            return self.source
        return 'encoder' if getattr(adapter.model, 'as_two_stage', False) and \
            adapter.encoder_scores_class else 'attention'

    def check_supported(self, adapter: 'ModelAdapter') -> None:
        super().check_supported(adapter)
        name = type(adapter.model).__name__
        if self.resolved_source(adapter) == 'encoder':
            if not getattr(adapter.model, 'as_two_stage', False):
                raise UnsupportedModelError(
                    f"{self.algorithm} with source='encoder' does not support {name}: its "
                    "encoder does not score tokens (not two-stage); use source='attention'")
            if not adapter.encoder_scores_class:
                raise UnsupportedModelError(
                    f"{self.algorithm} with source='encoder' does not support {name}: its "
                    "encoder scores objectness, not classes; use source='attention'")
        why = adapter.unreadable_attention_reason()
        if why:
            raise self.unsupported(adapter, why)

    def explain(self, adapter: 'ModelAdapter', samples: Optional[list] = None,
                targets: Optional[List[Tensor]] = None) -> Tensor:
        if self.resolved_source(adapter) == 'encoder':
            tokens = adapter.encoder_class_probabilities().transpose(1, 2)  # (B, K, N)
            return merge_levels(adapter.token_levels(tokens), adapter.level_grids())[0]
        tokens = torch.einsum('bqk,bqn->bkn', adapter.query_class_probabilities(),
                              adapter.cross_attention())
        return self._attention_maps(adapter, tokens)

    def explain_boxes(self, adapter: 'ModelAdapter', samples: list, boxes: List[Tensor],
                      labels: List[Tensor]) -> List[Tensor]:
        from mmdet.structures.bbox import bbox_overlaps
        probabilities = adapter.query_class_probabilities()
        attention = adapter.cross_attention()
        maps = []
        for image, (image_boxes, image_labels) in enumerate(zip(boxes, labels)):
            shape = samples[image].metainfo.get('img_shape') or adapter.input_shape
            query_boxes = adapter.query_boxes(image, tuple(shape[:2]))
            evidence = bbox_overlaps(query_boxes, image_boxes.to(query_boxes)) >= \
                self.box_iou_thr  # (Q, N)
            weights = probabilities[image][:, image_labels.long()] * evidence
            tokens = weights.T @ attention[image]  # (N, tokens)
            maps.append(self._attention_maps(adapter, tokens[None])[0])
        return maps

    @staticmethod
    def _attention_maps(adapter: 'ModelAdapter', tokens: Tensor) -> Tensor:
        """(B, T, N) attention per token -> (B, T, h, w) attention per finest-level cell."""
        levels = adapter.token_levels(tokens)
        finest = max(level.shape[-2:].numel() for level in levels)
        densities = [level * level.shape[-2:].numel() / finest for level in levels]
        merged, _ = merge_levels(densities, adapter.level_grids())
        return merged * len(levels)  # the sum of the levels
