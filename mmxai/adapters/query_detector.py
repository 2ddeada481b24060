"""The adapter of query-based detectors (DETR and its descendants): queries, attention, encoder.

A DETR-style detector predicts one box and one class distribution per
learned query; the last decoder layer's cross-attention says which image
tokens each query read. Forward hooks on the detector's own modules keep,
from its one prediction pass and without gradients:

- the head's outputs (every query's class scores and box);
- the last decoder layer's cross-attention: the head-averaged weights that
  ``nn.MultiheadAttention`` returns (DETR), the weights of
  ``ConditionalAttention`` (Conditional and DAB-DETR, kept at its
  ``attn_drop``), or the inputs, offsets and weights of MMCV's
  ``MultiScaleDeformableAttention`` (Deformable DETR, DINO, DDQ), splatted
  onto the tokens (:func:`~mmxai.adapters.attention.splat_sampling_weights`);
- for two-stage models (``as_two_stage``: DINO, DDQ, two-stage Deformable
  DETR), the encoder's per-token class logits, which ``pre_decoder`` scores
  with ``bbox_head.cls_branches[decoder.num_layers]`` to pick its queries,
  and which tokens it masked (their memory is zeroed before that branch).
"""
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..utils.errors import UnsupportedModelError
from .attention import level_slices, sampling_locations, splat_sampling_weights
from .detector import DetectorAdapter


def is_query_detector(model: nn.Module) -> bool:
    """Whether a detector is an MMDetection ``DetectionTransformer`` (DETR-style)."""
    from mmdet.models.detectors import DetectionTransformer
    return isinstance(model, DetectionTransformer)


def _attention_kind(module: nn.Module) -> Optional[str]:
    """``'deformable'``, ``'conditional'``, ``'multihead'`` or None (unknown attention)."""
    from mmcv.ops import MultiScaleDeformableAttention
    from mmdet.models.layers.transformer.utils import ConditionalAttention
    if isinstance(module, MultiScaleDeformableAttention):
        return 'deformable'
    if isinstance(module, ConditionalAttention):
        return 'conditional'
    if isinstance(getattr(module, 'attn', None), nn.MultiheadAttention):
        return 'multihead'
    return None


class QueryDetectorAdapter(DetectorAdapter):
    """Adapter for DETR-style detectors: query scores, boxes, cross-attention, encoder scores.

    Feature maps are the neck's levels, which the encoder flattens into its
    tokens (levels in order, each row-major); so token maps are placed on the
    feature levels' grids.
    """

    family = 'query_detection'

    @property
    def dense_head(self) -> Optional[nn.Module]:
        return None

    def modules_to_capture(self) -> Dict[str, nn.Module]:
        modules = super().modules_to_capture()
        modules['query_head'] = self.model.bbox_head
        return modules

    @property
    def cross_attention_module(self) -> nn.Module:
        """The cross-attention of the decoder's last layer (the one the head reads)."""
        return self.model.decoder.layers[-1].cross_attn

    @property
    def encoder_scores_class(self) -> bool:
        """Whether the encoder's token scores are class scores.

        DINO and its descendants train them on the classes; two-stage
        Deformable DETR trains them as objectness only (every label 0).
        """
        from mmdet.models.detectors import DINO
        return isinstance(self.model, DINO)

    def unreadable_attention_reason(self) -> Optional[str]:
        """Why the decoder's cross-attention weights cannot be read; None if they can."""
        if _attention_kind(self.cross_attention_module) is not None:
            return None
        return (f"its decoder's cross-attention {type(self.cross_attention_module).__name__} "
                'is not nn.MultiheadAttention, ConditionalAttention or '
                'MultiScaleDeformableAttention')

    @contextmanager
    def capture(self) -> Iterator[None]:
        with super().capture():
            store = self._captured
            handles = []

            def keep(name: str, index: Optional[int] = None, first: bool = False) -> Any:
                def hook(_module: nn.Module, _args: Any, output: Any) -> None:
                    if not (first and name in store):
                        store[name] = output if index is None else output[index]
                return hook

            cross = self.cross_attention_module
            kind = _attention_kind(cross)
            if kind == 'deformable':
                def keep_inputs(_module: nn.Module, _args: Any, kwargs: dict) -> None:
                    store['cross_inputs'] = {k: kwargs.get(k) for k in (
                        'reference_points', 'spatial_shapes', 'key_padding_mask')}
                handles += [cross.register_forward_pre_hook(keep_inputs, with_kwargs=True),
                            cross.sampling_offsets.register_forward_hook(keep('offsets')),
                            cross.attention_weights.register_forward_hook(
                                keep('attention_logits'))]
            elif kind == 'conditional':
                handles.append(cross.attn_drop.register_forward_hook(keep('head_attention')))
            elif kind == 'multihead':
                handles.append(cross.attn.register_forward_hook(keep('cross_attention', 1)))
            if getattr(self.model, 'as_two_stage', False):
                def keep_memory(_module: nn.Module, args: Any) -> None:
                    store.setdefault('encoder_memory', args[0])

                branch = self.model.bbox_head.cls_branches[self.model.decoder.num_layers]
                # First calls: a shared branch runs again for the decoder layers.
                handles += [branch.register_forward_hook(keep('encoder_logits', first=True)),
                            self.model.memory_trans_fc.register_forward_pre_hook(keep_memory)]
            try:
                yield
            finally:
                for handle in handles:
                    handle.remove()

    def query_class_probabilities(self) -> Tensor:
        """(B, Q, K) every query's class probabilities, as the head's prediction computes them.

        Sigmoid for sigmoid heads; softmax without the no-object column for
        DETR's softmax head (``DETRHead.predict_by_feat``).
        """
        scores = self.captured('query_head')[0][-1]
        head = self.model.bbox_head
        if getattr(head.loss_cls, 'use_sigmoid', False):
            return scores.sigmoid()
        return scores.softmax(-1)[..., :head.num_classes]

    def query_boxes(self, image: int, img_shape: Tuple[int, int]) -> Tensor:
        """(Q, 4) every query's box ``x1, y1, x2, y2`` in network-input pixels.

        The head predicts normalised ``(cx, cy, w, h)`` relative to the
        image's own (unpadded) shape, as ``predict_by_feat`` decodes them.
        """
        from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
        boxes = bbox_cxcywh_to_xyxy(self.captured('query_head')[1][-1][image])
        height, width = img_shape[:2]
        scale = boxes.new_tensor([width, height, width, height])
        return (boxes * scale).clamp(min=0).minimum(scale)

    def token_shapes(self) -> Tensor:
        """(L, 2) ``(h, w)`` of the levels the image tokens are flattened from."""
        inputs = self._captured.get('cross_inputs')
        if inputs is not None:
            return inputs['spatial_shapes']
        return torch.tensor([tuple(f.shape[-2:]) for f in self.feature_maps()])

    def cross_attention(self) -> Tensor:
        """(B, Q, N) each query's attention over the N image tokens, averaged over heads.

        Zero at padded tokens. Rows sum to 1 for softmax attention; deformable
        attention's sampling points that fall outside a level lose their weight,
        as ``grid_sample``'s zero padding does.

        Raises:
            UnsupportedModelError: If the attention was not captured or does
                not cover the tokens.
        """
        name = type(self.model).__name__
        if 'offsets' in self._captured:
            cross = self.cross_attention_module
            inputs = self.captured('cross_inputs')
            shapes = inputs['spatial_shapes']
            offsets = self.captured('offsets')
            batch, queries = offsets.shape[:2]
            offsets = offsets.view(batch, queries, cross.num_heads, cross.num_levels,
                                   cross.num_points, 2)
            weights = self.captured('attention_logits').view(
                batch, queries, cross.num_heads, -1).softmax(-1).view(
                batch, queries, cross.num_heads, cross.num_levels, cross.num_points)
            locations = sampling_locations(inputs['reference_points'], offsets, shapes,
                                           cross.num_points)
            attention = splat_sampling_weights(locations, weights, shapes)
            padding = inputs['key_padding_mask']
        elif 'head_attention' in self._captured:
            weights = self.captured('head_attention')
            attention = weights.unflatten(0, (-1, self.cross_attention_module.num_heads)).mean(1)
            padding = None  # softmax of -inf: already 0
        elif self._captured.get('cross_attention') is not None:
            attention, padding = self._captured['cross_attention'], None
        else:
            raise UnsupportedModelError(f'{name}: its decoder\'s cross-attention weights were '
                                        'not computed in this pass')
        tokens = int(self.token_shapes().prod(-1).sum())
        if attention.shape[-1] != tokens:
            raise UnsupportedModelError(
                f'{name}: its cross-attention covers {attention.shape[-1]} tokens, not the '
                f'{tokens} of its feature levels')
        if padding is not None:
            attention = attention.masked_fill(padding[:, None, :].bool(), 0)
        return attention

    def encoder_class_probabilities(self) -> Optional[Tensor]:
        """(B, N, K) the encoder's per-token class probabilities, 0 at masked tokens.

        Sigmoid of the logits ``pre_decoder`` picks its queries by; a token is
        masked (padding, or a proposal outside the image's border) where
        ``gen_encoder_output_proposals`` zeroed its memory. None for one-stage
        models, which do not score their tokens.
        """
        if 'encoder_logits' not in self._captured:
            return None
        probabilities = self.captured('encoder_logits').sigmoid()
        valid = self.captured('encoder_memory').ne(0).any(-1, keepdim=True)
        return probabilities * valid

    def token_levels(self, tokens: Tensor) -> List[Tensor]:
        """(B, T, N) values per token -> per level (B, T, h_l, w_l)."""
        return [tokens[..., start:start + h * w].unflatten(-1, (h, w))
                for start, h, w in level_slices(self.token_shapes())]

    @property
    def num_classes(self) -> int:
        return self.model.bbox_head.num_classes
