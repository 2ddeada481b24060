"""ViT Recipro-CAM for vision transformers with a CLS token (arXiv 2310.02588).

As its authors' implementations define it (OTX 1.x's ``ViTReciproCAMHook``,
openvino-xai's ``ViTReciproCAM``): one mosaic per patch position replaces the
output of the target block's first LayerNorm (``ln1``). The mosaic keeps the
normalised patch tokens of a 3x3 Gaussian neighbourhood of the position,
weighted 1/4 (centre), 1/8 (edges), 1/16 (corners), and zeroes every other
patch token; the extra tokens (CLS, distillation) are kept or zeroed
(``cls_token``). The block's residual carries its input masked the same way
(openvino-xai), which at the CLS token of the last block is the unmasked CLS
token. The rest of the network scores the classes for every mosaic.

Transformers whose blocks name that norm otherwise get the same definition
at their own first norm (see :class:`mmxai.adapters.vision_transformer.TokenStack`):
T2T-ViT's encoder layers, TNT's outer blocks (``norm_attn``) and XCiT's
class-attention blocks (``norm1``; its earlier cross-covariance blocks have
no CLS token).
"""
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import EXPLAINERS
from ..utils.errors import UnsupportedModelError
from .base import BaseExplainer

if TYPE_CHECKING:
    from ..adapters import ModelAdapter

#: The references' 3x3 Gaussian kernel, row by row.
GAUSSIAN_KERNEL = (1 / 16, 1 / 8, 1 / 16, 1 / 8, 1 / 4, 1 / 8, 1 / 16, 1 / 8, 1 / 16)
#: Tokens (masks x sequence) per chunk of the full-block path.
CHUNK_TOKENS = 1 << 16


def token_masks(height: int, width: int, use_gaussian: bool,
                device: torch.device) -> Tuple[Tensor, Tensor]:
    """The patch tokens every mask keeps, and their weights.

    Args:
        height (int): Rows of the patch grid.
        width (int): Columns of the patch grid.
        use_gaussian (bool): A 3x3 Gaussian around each position
            (:data:`GAUSSIAN_KERNEL`, cut at the border, not renormalised), or
            the position's own token only, weight 1.
        device (torch.device): Where to make them.

    Returns:
        tuple: ``index`` (h*w, k) long patch indices (clamped at the border)
        and ``weight`` (h*w, k) float weights, 0 for neighbours outside the
        grid; k = 9 or 1.
    """
    if not use_gaussian:
        index = torch.arange(height * width, device=device)[:, None]
        return index, torch.ones(index.shape, device=device)
    rows = torch.arange(height, device=device).view(-1, 1, 1)
    cols = torch.arange(width, device=device).view(1, -1, 1)
    dy = torch.tensor([-1, -1, -1, 0, 0, 0, 1, 1, 1], device=device)
    dx = torch.tensor([-1, 0, 1, -1, 0, 1, -1, 0, 1], device=device)
    y, x = rows + dy, cols + dx  # (h, w, 9)
    inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
    kernel = torch.tensor(GAUSSIAN_KERNEL, device=device)
    index = (y.clamp(0, height - 1) * width + x.clamp(0, width - 1)).reshape(-1, 9)
    return index, (kernel * inside).reshape(-1, 9)


def ffn_norm(block: nn.Module) -> nn.Module:
    """The norm whose output feeds the block's feed-forward network.

    ``TransformerEncoderLayer`` uses ``ln2``; MMPretrain's
    ``DeiT3TransformerEncoderLayer.forward`` normalises both branches with
    ``ln1`` (its ``ln2`` is built but never called), and mosaics must go
    through what the model does.
    """
    from mmpretrain.models.backbones.deit3 import DeiT3TransformerEncoderLayer
    return block.ln1 if isinstance(block, DeiT3TransformerEncoderLayer) else block.ln2


def supported_block(block: nn.Module) -> bool:
    """Whether :func:`masked_block` computes ``block``'s forward.

    That is a residual block over all tokens that normalises them first:
    MMPretrain's ``TransformerEncoderLayer`` (ViT, DeiT, BEiT-style),
    ``DeiT3TransformerEncoderLayer``, T2T-ViT's encoder layers (without the
    value shortcut of its tokens-to-token layers), TNT's outer
    ``TransformerBlock`` and XCiT's ``ClassAttentionBlock``.
    """
    from mmpretrain.models.backbones.t2t_vit import T2TTransformerLayer
    from mmpretrain.models.backbones.tnt import TransformerBlock
    from mmpretrain.models.backbones.xcit import ClassAttentionBlock
    if type(block).forward is T2TTransformerLayer.forward:
        return not block.v_shortcut
    return is_encoder_layer(block) or type(block).forward in (TransformerBlock.forward,
                                                              ClassAttentionBlock.forward)


def is_encoder_layer(block: nn.Module) -> bool:
    """Whether ``block`` is a ViT or DeiT III encoder layer (what the fast path computes)."""
    from mmpretrain.models.backbones.deit3 import DeiT3TransformerEncoderLayer
    from mmpretrain.models.backbones.vision_transformer import TransformerEncoderLayer
    return type(block).forward in (TransformerEncoderLayer.forward,
                                   DeiT3TransformerEncoderLayer.forward)


def masked_block(block: nn.Module, residual: Tensor, normed: Tensor) -> Tensor:
    """A :func:`supported_block`'s forward with its input and first norm's output given.

    Args:
        block (nn.Module): The block.
        residual (Tensor): (n, T, C) what the block adds its branches to
            (its input, masked).
        normed (Tensor): (n, T, C) what its first norm gives (masked).

    Returns:
        Tensor: (n, T, C), the block's output, as its own ``forward`` computes
        it from an input whose first norm is ``normed``.
    """
    from mmpretrain.models.backbones.tnt import TransformerBlock
    from mmpretrain.models.backbones.xcit import ClassAttentionBlock
    if isinstance(block, TransformerBlock):  # TNT: MMCV attention adds its own identity
        hidden = block.attn(normed, identity=residual)
        return block.ffn(block.norm_ffn(hidden), identity=hidden)
    if isinstance(block, ClassAttentionBlock):  # XCiT: only the CLS token queries
        attended = torch.cat([block.attn(normed), normed[:, 1:]], dim=1)
        hidden = residual + block.drop_path(block.gamma1 * attended)
        hidden = block.norm2(hidden) if block.tokens_norm else \
            torch.cat([block.norm2(hidden[:, :1]), hidden[:, 1:]], dim=1)
        cls_token = block.gamma2 * block.ffn(hidden[:, :1], identity=0)
        return hidden + block.drop_path(torch.cat([cls_token, hidden[:, 1:]], dim=1))
    hidden = residual + block.attn(normed)
    return block.ffn(ffn_norm(block)(hidden), identity=hidden)


def last_block_extra_tokens(block: nn.Module, tokens: Tensor, num_extra: int, index: Tensor,
                            weight: Tensor, cls_token: bool) -> Tensor:
    """Output of the last ``block`` at the extra (CLS) tokens, for every mosaic.

    Only the extra tokens' outputs are computed. The attention's input
    projection is linear, so the key and value of a kept token are ``weight *
    W n + b`` from one projection of each normalised token ``n``, and every
    zeroed token has the key and value ``b`` (the projection's bias): they
    enter the softmax as one entry plus ``log(count)``. A mosaic costs about
    9 tokens' attention scores instead of a full block.

    Args:
        block (nn.Module): An MMPretrain ``TransformerEncoderLayer``.
        tokens (Tensor): (B, E + N, C) input of the block.
        num_extra (int): E, the extra tokens (CLS, distillation) in front.
        index (Tensor): (P, k) kept patch indices per mosaic.
        weight (Tensor): (P, k) their weights (0: not kept).
        cls_token (bool): Keep the extra tokens (else they are zeroed too).

    Returns:
        Tensor: (B, P, E, C), the block's output at the extra tokens.
    """
    attn = block.attn
    batch, _, channels = tokens.shape
    heads, head_dims = attn.num_heads, attn.head_dims
    num_patches = tokens.shape[1] - num_extra
    normed = block.ln1(tokens)
    projected = F.linear(normed, attn.qkv.weight).unflatten(-1, (3, heads, head_dims))
    bias = attn.qkv.bias if attn.qkv.bias is not None else normed.new_zeros(3 * channels)
    q_bias, k_bias, v_bias = bias.view(3, heads, head_dims).unbind(0)  # each (H, D)
    kept_mask = weight > 0  # (P, k)
    scaled = weight[None, :, :, None, None]
    k_kept = scaled * projected[:, num_extra:, 1][:, index] + k_bias  # (B, P, k, H, D)
    v_kept = scaled * projected[:, num_extra:, 2][:, index] + v_bias
    zeros_count = (num_patches - kept_mask.sum(1)).to(tokens.dtype)  # (P,)
    if cls_token:
        q_extra, k_extra, v_extra = (projected[:, :num_extra] + bias.view(3, heads, head_dims)
                                     ).unbind(2)  # each (B, E, H, D)
        residual = tokens[:, :num_extra]
    else:  # zeroed extra tokens: query and key/value are the biases
        q_extra = q_bias.expand(batch, num_extra, heads, head_dims)
        k_extra = v_extra = tokens.new_zeros(batch, 0, heads, head_dims)
        residual = tokens.new_zeros(batch, num_extra, channels)
        zeros_count = zeros_count + num_extra

    scale = head_dims ** -0.5
    num_masks = index.shape[0]
    s_extra = torch.einsum('behd,bfhd->bhef', q_extra, k_extra) * scale  # (B, H, E, F)
    s_kept = torch.einsum('behd,bpkhd->bphek', q_extra, k_kept) * scale  # (B, P, H, E, k)
    s_zero = torch.einsum('behd,hd->bhe', q_extra, k_bias) * scale  # (B, H, E)
    s_kept = s_kept.masked_fill(~kept_mask[None, :, None, None, :], float('-inf'))
    s_extra = s_extra[:, None].expand(-1, num_masks, -1, -1, -1)  # (B, P, H, E, F)
    s_zero = s_zero[:, None, :, :, None].expand(-1, num_masks, -1, -1, -1)
    # log(count) turns "count identical zero tokens" into one softmax entry.
    log_count = torch.log(zeros_count.clamp_min(1)).view(1, -1, 1, 1, 1)
    s_zero = torch.where(zeros_count.view(1, -1, 1, 1, 1) > 0, s_zero + log_count,
                         torch.full_like(s_zero, float('-inf')))
    probs = F.softmax(torch.cat([s_extra, s_kept, s_zero], dim=-1), dim=-1)
    p_extra, p_kept, p_zero = probs.split([k_extra.shape[1], kept_mask.shape[1], 1], dim=-1)
    mixed = (torch.einsum('bphef,bfhd->bpehd', p_extra, v_extra)
             + torch.einsum('bphek,bpkhd->bpehd', p_kept, v_kept)
             + p_zero[..., 0].permute(0, 1, 3, 2)[..., None] * v_bias)
    attended = attn.out_drop(attn.gamma1(attn.proj_drop(attn.proj(mixed.flatten(-2)))))
    hidden = residual[:, None] + attended  # (B, P, E, C)
    return block.ffn(ffn_norm(block)(hidden), identity=hidden)


def masked_blocks_extra_tokens(blocks: Sequence[nn.Module], target: int, tokens: Tensor,
                               num_extra: int, index: Tensor, weight: Tensor,
                               cls_token: bool, first_norm: str = 'ln1') -> Tensor:
    """Output of the last block at the extra tokens, mosaics made at block ``target``.

    The target block runs on every full mosaic (its attention on the masked
    normalised tokens, its residual on the masked input), then every later
    block runs as it is, in chunks of about :data:`CHUNK_TOKENS` tokens.

    Args:
        blocks (Sequence[nn.Module]): The backbone's transformer blocks
            (:func:`supported_block`).
        target (int): Index of the target block in ``blocks``.
        tokens (Tensor): (B, E + N, C) input of the target block.
        num_extra (int): E, the extra tokens in front.
        index (Tensor): (P, k) kept patch indices per mosaic.
        weight (Tensor): (P, k) their weights (0: not kept).
        cls_token (bool): Keep the extra tokens (else they are zeroed too).
        first_norm (str): The attribute of the blocks' first norm.

    Returns:
        Tensor: (B, P, E, C), the last block's output at the extra tokens.
    """
    block = blocks[target]
    batch, length, channels = tokens.shape
    num_masks = index.shape[0]
    masks = tokens.new_zeros(num_masks, length)  # per mosaic, the weight of each token
    masks[:, num_extra:].scatter_add_(1, index, weight)  # border neighbours weigh 0
    masks[:, :num_extra] = float(cls_token)
    normed = getattr(block, first_norm)(tokens)
    chunk = max(1, CHUNK_TOKENS // (batch * length))
    outputs = []
    for start in range(0, num_masks, chunk):
        part = masks[start:start + chunk, :, None]  # (m, T, 1)
        residual = (tokens[:, None] * part).flatten(0, 1)  # (B * m, T, C)
        x = masked_block(block, residual, (normed[:, None] * part).flatten(0, 1))
        for later in blocks[target + 1:]:
            x = later(x)
        outputs.append(x[:, :num_extra].unflatten(0, (batch, -1)))
    return torch.cat(outputs, dim=1)


@EXPLAINERS.register_module()
class ViTReciproCAM(BaseExplainer):
    """Class-wise maps of vision transformers by masking normalised tokens.

    For every patch position, a mosaic replaces the output of the target
    block's first LayerNorm (see the module docstring); the rest of the
    network (the block, later blocks, the final norm and the head) scores the
    classes (softmax; sigmoid for multi-label heads). A backbone that averages
    its final patch tokens (``out_type='avg_featmap'``) has no CLS token to
    score: it gets Recipro-CAM on its final token map, whose pooled mosaics go
    through its own ``ln2`` and head. With the last block as
    target (the default) all mosaics of all images run as one batch and only
    the block's CLS output of a ViT or DeiT III layer is computed
    (:func:`last_block_extra_tokens`); otherwise the full mosaics run through
    the target block and the later ones in chunks
    (:func:`masked_blocks_extra_tokens`).

    Args:
        target_layer (int): The target block, an index into the backbone's
            blocks (``backbone.layers``; T2T-ViT's ``encoder``, XCiT's
            ``ca_layers``, TNT's last outer block only); -1 is the last, as
            OTX 1.x's ``layer_index`` (openvino-xai counts it from the end as
            ``k = 1``).
        use_gaussian (bool): 3x3 Gaussian neighbourhoods (True) or the single
            token of each position (False), as the references' option.
        cls_token (bool): Keep the CLS (and distillation) token in every
            mosaic (True) or zero it, as the references' option.
    """

    algorithm = 'classwisesaliencymap'
    class_wise = True
    value_range = (0.0, 1.0)
    families = ('vision_transformer',)

    def __init__(self, target_layer: int = -1, use_gaussian: bool = True,
                 cls_token: bool = True) -> None:
        if isinstance(target_layer, bool) or not isinstance(target_layer, int):
            raise TypeError(f'target_layer must be a block index (e.g. -1, the last block), '
                            f'not {target_layer!r}')
        self.target_layer = target_layer
        self.use_gaussian = bool(use_gaussian)
        self.cls_token = bool(cls_token)

    def check_supported(self, adapter: 'ModelAdapter') -> None:
        super().check_supported(adapter)
        stack, backbone = adapter.stack, adapter.model.backbone
        name = type(backbone).__name__
        num_layers = len(stack.blocks)
        if not -num_layers <= self.target_layer < num_layers:
            raise UnsupportedModelError(
                f'ViT Recipro-CAM: target_layer={self.target_layer} is out of range: {name} '
                f'has {num_layers} blocks (-1 is the last)')
        if adapter.pools_to_vectors and stack.last_only:
            return  # the averaged final tokens: Recipro-CAM's pooled mosaics (see explain)
        block = stack.blocks[self.target_layer]
        if not supported_block(block):
            raise UnsupportedModelError(
                f'ViT Recipro-CAM needs residual transformer blocks over all tokens (ViT, '
                f'DeiT, DeiT3, T2T-ViT, TNT, XCiT); {name} has {type(block).__name__}')
        if self.target_layer % num_layers != num_layers - 1 and not stack.later_blocks_run_alone:
            raise UnsupportedModelError(
                f'ViT Recipro-CAM: {name} explains at its last block only (target_layer=-1): '
                'its later blocks take more than the tokens (TNT: its pixel tokens)')
        if stack.num_extra_tokens == 0 or getattr(backbone, 'cls_token', None) is None:
            raise UnsupportedModelError(
                f'ViT Recipro-CAM needs a vision transformer with a CLS token; {name} has '
                'none')
        if stack.out_type != 'cls_token' or not stack.last_only:
            raise UnsupportedModelError(
                f'ViT Recipro-CAM needs {name} with out_type="cls_token" from the last layer '
                f'only; this one has out_type={stack.out_type!r}, '
                f'out_indices={list(getattr(backbone, "out_indices", [-1]))}')

    def explain(self, adapter: 'ModelAdapter', samples: Optional[list] = None,
                targets: Optional[List[Tensor]] = None) -> Tensor:
        if adapter.pools_to_vectors:
            # No CLS token decides: the backbone averages its final patch tokens,
            # so this is Recipro-CAM on that token map (Byun & Lee 2022).
            from .recipro_cam import ReciproCAM
            return ReciproCAM().explain(adapter, samples, targets)
        stack = adapter.stack
        blocks = stack.blocks
        target = self.target_layer % len(blocks)
        tokens = adapter.block_input(target)
        height, width = adapter.patch_resolution
        index, weight = token_masks(height, width, self.use_gaussian, tokens.device)
        weight = weight.to(tokens)
        if target == len(blocks) - 1 and is_encoder_layer(blocks[target]) \
                and self._attention_is_standard(blocks[target].attn):
            extra = last_block_extra_tokens(blocks[target], tokens, adapter.num_extra_tokens,
                                            index, weight, self.cls_token)
        else:
            extra = masked_blocks_extra_tokens(blocks, target, tokens, adapter.num_extra_tokens,
                                               index, weight, self.cls_token, stack.first_norm)
        batch = tokens.shape[0]
        scores = adapter.scores_from_extra_tokens(extra.flatten(0, 1))  # (B * P, K)
        return scores.reshape(batch, height, width, -1).permute(0, 3, 1, 2)

    @staticmethod
    def _attention_is_standard(attn: nn.Module) -> bool:
        """Whether the attention is what :func:`last_block_extra_tokens` computes.

        That is ``softmax(q k^T / sqrt(D)) v`` of a linear ``qkv``, without a
        value shortcut.
        """
        return (type(attn.qkv) is nn.Linear and not attn.v_shortcut
                and attn.scaled_dot_product_attention is F.scaled_dot_product_attention)
