"""The adapter of MMPretrain transformers over patch tokens with a CLS token.

ViT, DeiT, DeiT III, BEiT, EVA, RevViT, T2T-ViT, TNT and XCiT: a stack of
blocks over (extra + patch) tokens, a final norm and a head on the CLS token
(or on the averaged patch tokens). :func:`token_stack` says where each keeps
those pieces.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from torch import Tensor, nn

from .classifier import ClassifierAdapter, layer_norm_with_statistics_of


class TokenStack(NamedTuple):
    """Where a transformer backbone keeps its blocks, patch grid and final tokens.

    Attributes:
        blocks (Sequence[nn.Module]): The blocks ViT Recipro-CAM can make
            mosaics at (``target_layer`` indexes them), each a residual block
            over all tokens whose first norm is ``first_norm``.
        first_norm (str): The attribute of that norm in every block.
        final_norm (nn.Module): What the backbone applies to the last
            block's output (``nn.Identity`` where nothing).
        last_tokens (nn.Module): The module whose output is the final
            (B, E + N, C) tokens.
        grid (nn.Module | tuple): A module whose output's second item is the
            (h, w) patch grid, or the grid itself where the input size is fixed.
        num_extra_tokens (int): Tokens in front of the patch tokens.
        out_type (str): ``'cls_token'``, ``'avg_featmap'``, ... as MMPretrain names it.
        last_only (bool): Whether the backbone outputs its last block's tokens only.
        later_blocks_run_alone (bool): Whether a block after the target runs
            as ``block(tokens)`` (TNT's outer blocks also need its pixel tokens).
    """

    blocks: Sequence[nn.Module]
    first_norm: str
    final_norm: nn.Module
    last_tokens: nn.Module
    grid: Union[nn.Module, Tuple[int, int]]
    num_extra_tokens: int
    out_type: str
    last_only: bool
    later_blocks_run_alone: bool = True


def _single_last_output(backbone: nn.Module, num_outputs: int) -> bool:
    indices = list(getattr(backbone, 'out_indices', [-1]))  # RevViT: the last only
    return len(indices) == 1 and indices[0] % num_outputs == num_outputs - 1


def token_stack(backbone: nn.Module) -> Optional[TokenStack]:
    """The :class:`TokenStack` of a transformer backbone, or None for other backbones."""
    from mmpretrain.models.backbones import (
        TNT,
        BEiTViT,
        RevVisionTransformer,
        T2T_ViT,
        VisionTransformer,
        XCiT,
    )
    if isinstance(backbone, (VisionTransformer, BEiTViT, RevVisionTransformer)):
        last = getattr(backbone, 'fusion_layer', None) or \
            (backbone.ln1 if backbone.final_norm else backbone.layers[-1])
        final_norm = backbone.ln1 if backbone.final_norm else nn.Identity()
        return TokenStack(backbone.layers, 'ln1', final_norm, last, backbone.patch_embed,
                          backbone.num_extra_tokens, backbone.out_type,
                          _single_last_output(backbone, len(backbone.layers)))
    if isinstance(backbone, T2T_ViT):
        return TokenStack(backbone.encoder, 'ln1', backbone.norm, backbone.norm,
                          backbone.tokens_to_token, backbone.num_extra_tokens,
                          backbone.out_type, _single_last_output(backbone,
                                                                 len(backbone.encoder)))
    if isinstance(backbone, XCiT):  # patch tokens meet the CLS token in the class-attention blocks
        depth = len(backbone.xca_layers) + len(backbone.ca_layers)
        return TokenStack(backbone.ca_layers, 'norm1', backbone.norm, backbone.norm,
                          backbone.patch_embed, 1, backbone.out_type,
                          _single_last_output(backbone, depth))
    if isinstance(backbone, TNT):  # built for one input size; outputs the CLS token
        embed = backbone.pixel_embed
        cell = [stride * size for stride, size in zip(embed.proj.stride, embed.new_patch_size)]
        grid = (embed.img_size[0] // cell[0], embed.img_size[1] // cell[1])
        return TokenStack([layer.outer_block for layer in backbone.layers], 'norm_attn',
                          backbone.norm, backbone.norm, grid, 1, 'cls_token', True,
                          later_blocks_run_alone=False)
    return None


class VisionTransformerAdapter(ClassifierAdapter):
    """Adapter for classifiers whose backbone has a :class:`TokenStack`.

    Its feature map is the final patch tokens on the patch grid: the output
    of the final norm or last block, or of RevViT's fusion of its two
    streams. It also keeps the input of every block of the stack, for ViT
    Recipro-CAM.
    """

    family = 'vision_transformer'
    feature_source = 'last_tokens'
    cell_anchor = 'center'  # non-overlapping patches

    def __init__(self, model: nn.Module, stack: TokenStack) -> None:
        super().__init__(model)
        #: Where the backbone keeps its blocks, grid and final tokens (:func:`token_stack`).
        self.stack = stack

    def modules_to_capture(self) -> Dict[str, nn.Module]:
        modules = dict(super().modules_to_capture(), last_tokens=self.stack.last_tokens)
        if isinstance(self.stack.grid, nn.Module):
            modules['patch_grid'] = self.stack.grid
        return modules

    def inputs_to_capture(self) -> Dict[str, Tuple[nn.Module, int]]:
        blocks = {f'block_input.{index}': (block, 0)
                  for index, block in enumerate(self.stack.blocks)}
        return dict(super().inputs_to_capture(), **blocks)

    def block_input(self, index: int) -> Tensor:
        """(B, E + N, C) tokens that block ``index`` of the stack got in the last captured pass.

        Args:
            index (int): Index into the stack's blocks; negative counts from the end.
        """
        return self.captured(f'block_input.{index % len(self.stack.blocks)}')

    @property
    def patch_resolution(self) -> Tuple[int, int]:
        """(h, w) patch grid of the last captured pass."""
        if isinstance(self.stack.grid, nn.Module):
            return tuple(self.captured('patch_grid')[1])
        return self.stack.grid

    @property
    def num_extra_tokens(self) -> int:
        """Tokens before the patch tokens (CLS, distillation)."""
        return self.stack.num_extra_tokens

    def feature_maps(self) -> List[Tensor]:
        tokens = self.captured('last_tokens')[:, self.num_extra_tokens:]
        return [tokens.transpose(1, 2).unflatten(2, self.patch_resolution)]

    @property
    def pools_to_vectors(self) -> bool:
        """Whether the backbone averages its final patch tokens (``out_type='avg_featmap'``).

        Then its output is ``ln2`` of that average (MAE-style fine-tuning; the
        plain average where there is no ``ln2``: RevViT, T2T-ViT, XCiT), and
        Recipro-CAM's pooled mosaics of the final tokens are exact (see
        :meth:`pooled_logits`).
        """
        return self.stack.out_type == 'avg_featmap'

    def pooled_logits(self, pooled: Tensor, wholes: Optional[Tensor] = None) -> Tensor:
        """(n, K) logits from (n, C) averages of final patch tokens: ``ln2``, then the head.

        With ``wholes`` (each image's average, ``pooled`` holding shares of
        it), ``ln2`` uses their statistics (see
        :func:`~mmxai.adapters.classifier.layer_norm_with_statistics_of`).
        """
        norm = getattr(self.model.backbone, 'ln2', None)
        if norm is None:
            return self.head_logits((pooled,))
        normalised = None if wholes is None else \
            layer_norm_with_statistics_of(norm, pooled, wholes)
        return self.head_logits((norm(pooled) if normalised is None else normalised,))

    def feature_map_logits(self, feature_maps: Tensor) -> Tensor:
        """(n, K) logits from (n, C, h, w) final patch tokens of an averaging backbone."""
        return self.pooled_logits(feature_maps.mean((-2, -1)))

    def scores_from_extra_tokens(self, extra_tokens: Tensor) -> Tensor:
        """Class probabilities from the last block's output at the extra tokens.

        Args:
            extra_tokens (Tensor): (M, E, C) CLS (and distillation) tokens.
        """
        extra_tokens = self.stack.final_norm(extra_tokens)
        cls_token = extra_tokens[:, 0]
        feats = (cls_token, extra_tokens[:, 1]) if self.num_extra_tokens == 2 else cls_token
        return self.probabilities(self.model.head((feats,)))
