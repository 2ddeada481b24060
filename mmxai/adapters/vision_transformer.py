"""The adapter of MMPretrain vision transformers (ViT, DeiT, BEiT, EVA, RevViT)."""
from typing import Dict, List, Tuple

from torch import Tensor, nn

from .classifier import ClassifierAdapter

#: Backbones that are a stack of blocks over patch tokens, as ``VisionTransformer``
#: (``patch_embed`` returning the grid, ``layers``, ``out_type``, ``num_extra_tokens``).
VIT_LIKE_BACKBONES = ('VisionTransformer', 'BEiTViT', 'RevVisionTransformer')


class VisionTransformerAdapter(ClassifierAdapter):
    """Adapter for classifiers with a vision transformer backbone (:data:`VIT_LIKE_BACKBONES`).

    Its feature map is the final patch tokens on the patch grid: the output
    of the final norm (``ln1``) or last block, or of RevViT's fusion of its
    two streams. It also keeps the input of every transformer block, for
    ViT Recipro-CAM.
    """

    family = 'vision_transformer'
    feature_source = 'last_tokens'
    cell_anchor = 'center'  # non-overlapping patches

    def modules_to_capture(self) -> Dict[str, nn.Module]:
        backbone = self.model.backbone
        last = getattr(backbone, 'fusion_layer', None) or \
            (backbone.ln1 if backbone.final_norm else backbone.layers[-1])
        return dict(super().modules_to_capture(), patch_embed=backbone.patch_embed,
                    last_tokens=last)

    def inputs_to_capture(self) -> Dict[str, Tuple[nn.Module, int]]:
        blocks = {f'block_input.{index}': (layer, 0)
                  for index, layer in enumerate(self.model.backbone.layers)}
        return dict(super().inputs_to_capture(), **blocks)

    def block_input(self, index: int) -> Tensor:
        """(B, E + N, C) tokens that transformer block ``index`` got in the last captured pass.

        Args:
            index (int): Index into ``backbone.layers``; negative counts from the end.
        """
        return self.captured(f'block_input.{index % len(self.model.backbone.layers)}')

    @property
    def patch_resolution(self) -> Tuple[int, int]:
        """(h, w) patch grid of the last captured pass."""
        return tuple(self.captured('patch_embed')[1])

    @property
    def num_extra_tokens(self) -> int:
        """Tokens before the patch tokens (CLS, distillation)."""
        return self.model.backbone.num_extra_tokens

    def feature_maps(self) -> List[Tensor]:
        tokens = self.captured('last_tokens')[:, self.num_extra_tokens:]
        return [tokens.transpose(1, 2).unflatten(2, self.patch_resolution)]

    @property
    def pools_to_vectors(self) -> bool:
        """Whether the backbone averages its final patch tokens (``out_type='avg_featmap'``).

        Then its output is ``ln2`` of that average (MAE-style fine-tuning; the
        plain average for RevViT, which has no ``ln2``), and Recipro-CAM's
        pooled mosaics of the final tokens are exact (see :meth:`pooled_logits`).
        """
        return self.model.backbone.out_type == 'avg_featmap'

    def pooled_logits(self, pooled: Tensor) -> Tensor:
        """(n, K) logits from (n, C) averages of final patch tokens: ``ln2``, then the head."""
        norm = getattr(self.model.backbone, 'ln2', None)
        return self.head_logits((pooled if norm is None else norm(pooled),))

    def feature_map_logits(self, feature_maps: Tensor) -> Tensor:
        """(n, K) logits from (n, C, h, w) final patch tokens of an averaging backbone."""
        return self.pooled_logits(feature_maps.mean((-2, -1)))

    def scores_from_extra_tokens(self, extra_tokens: Tensor) -> Tensor:
        """Class probabilities from the last block's output at the extra tokens.

        Args:
            extra_tokens (Tensor): (M, E, C) CLS (and distillation) tokens.
        """
        backbone = self.model.backbone
        if backbone.final_norm:
            extra_tokens = backbone.ln1(extra_tokens)
        cls_token = extra_tokens[:, 0]
        feats = (cls_token, extra_tokens[:, 1]) if self.num_extra_tokens == 2 else cls_token
        return self.probabilities(self.model.head((feats,)))
