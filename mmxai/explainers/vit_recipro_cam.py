"""ViT Recipro-CAM for vision transformers with a CLS token (arXiv 2310.02588)."""
from typing import TYPE_CHECKING, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import EXPLAINERS
from ..utils.errors import UnsupportedModelError
from .base import BaseExplainer

if TYPE_CHECKING:
    from ..adapters import ModelAdapter


def gaussian_token_masks(height: int, width: int, device: torch.device) -> Tuple[Tensor, Tensor]:
    """3x3 Gaussian weights around every patch position.

    Returns:
        tuple: ``index`` (h*w, 9) long patch indices (clamped at the border)
        and ``weight`` (h*w, 9) float weights, 0 for neighbours outside the
        grid; the centre weighs 1, edge neighbours 0.5, corners 0.25.
    """
    rows = torch.arange(height, device=device).view(-1, 1, 1)
    cols = torch.arange(width, device=device).view(1, -1, 1)
    dy = torch.tensor([-1, -1, -1, 0, 0, 0, 1, 1, 1], device=device)
    dx = torch.tensor([-1, 0, 1, -1, 0, 1, -1, 0, 1], device=device)
    y, x = rows + dy, cols + dx  # (h, w, 9)
    inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
    kernel = torch.tensor([0.25, 0.5, 0.25, 0.5, 1.0, 0.5, 0.25, 0.5, 0.25], device=device)
    index = (y.clamp(0, height - 1) * width + x.clamp(0, width - 1)).reshape(-1, 9)
    return index, (kernel * inside).reshape(-1, 9)


def masked_block_extra_tokens(block: nn.Module, tokens: Tensor, num_extra: int,
                              index: Tensor, weight: Tensor) -> Tensor:
    """Output of ``block`` at the extra (CLS) tokens, for every token mask.

    Mask ``p`` keeps the extra tokens and the patch tokens ``index[p]`` scaled
    by ``weight[p]``; every other patch token is zero. Only the extra tokens
    are computed, and all zeroed tokens share one key and value, so a mask
    costs about 9 tokens' projections instead of a full block.

    Args:
        block (nn.Module): An MMPretrain ``TransformerEncoderLayer``.
        tokens (Tensor): (B, E + N, C) input of the block.
        num_extra (int): E, the extra tokens (CLS, distillation) in front.
        index (Tensor): (P, 9) kept patch indices per mask.
        weight (Tensor): (P, 9) their weights (0: not kept).

    Returns:
        Tensor: (B, P, E, C), the block's output at the extra tokens.
    """
    attn = block.attn
    batch, _, channels = tokens.shape
    heads, head_dims = attn.num_heads, attn.head_dims
    num_patches = tokens.shape[1] - num_extra
    extra = tokens[:, :num_extra]  # (B, E, C)

    def qkv(x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        out = attn.qkv(block.ln1(x)).unflatten(-1, (3, heads, head_dims))
        return out.unbind(dim=-3)  # each (..., heads, head_dims)

    q_extra, k_extra, v_extra = qkv(extra)  # (B, E, H, D)
    _, k_zero, v_zero = qkv(tokens.new_zeros(1, channels))  # (1, H, D)
    kept = tokens[:, num_extra:][:, index] * weight[None, :, :, None]  # (B, P, 9, C)
    _, k_kept, v_kept = qkv(kept)  # (B, P, 9, H, D)

    scale = head_dims ** -0.5
    s_extra = torch.einsum('behd,bfhd->bhef', q_extra, k_extra) * scale  # (B, H, E, E)
    s_kept = torch.einsum('behd,bpkhd->bphek', q_extra, k_kept) * scale  # (B, P, H, E, 9)
    s_zero = torch.einsum('behd,hd->bhe', q_extra, k_zero[0]) * scale  # (B, H, E)
    kept_mask = weight > 0
    zeros_count = (num_patches - kept_mask.sum(1)).to(tokens.dtype)  # (P,)
    s_kept = s_kept.masked_fill(~kept_mask[None, :, None, None, :], float('-inf'))
    s_extra = s_extra[:, None].expand(-1, index.shape[0], -1, -1, -1)  # (B, P, H, E, E)
    s_zero = s_zero[:, None, :, :, None].expand(-1, index.shape[0], -1, -1, -1)
    # log(count) turns "count identical zero tokens" into one softmax entry.
    log_count = torch.log(zeros_count.clamp_min(1)).view(1, -1, 1, 1, 1)
    s_zero = torch.where(zeros_count.view(1, -1, 1, 1, 1) > 0, s_zero + log_count,
                         torch.full_like(s_zero, float('-inf')))
    probs = F.softmax(torch.cat([s_extra, s_kept, s_zero], dim=-1), dim=-1)
    p_extra, p_kept, p_zero = probs.split([num_extra, kept_mask.shape[1], 1], dim=-1)
    mixed = (torch.einsum('bphef,bfhd->bpehd', p_extra, v_extra)
             + torch.einsum('bphek,bpkhd->bpehd', p_kept, v_kept)
             + p_zero[..., 0].permute(0, 1, 3, 2)[..., None] * v_zero[0])
    attended = attn.out_drop(attn.gamma1(attn.proj_drop(attn.proj(mixed.flatten(-2)))))
    hidden = extra[:, None] + attended  # (B, P, E, C)
    return block.ffn(block.ln2(hidden), identity=hidden)


@EXPLAINERS.register_module()
class ViTReciproCAM(BaseExplainer):
    """Class-wise maps of vision transformers by token masking.

    For every patch position a 3x3 Gaussian mask keeps that token and its
    neighbours (the CLS token is always kept) at the input of the last
    transformer block; the last block (at the CLS token only), the final norm
    and the head score the classes (softmax; sigmoid for multi-label heads).
    All masks of all images run as one batch.
    """

    algorithm = 'classwisesaliencymap'
    class_wise = True
    value_range = (0.0, 1.0)
    families = ('vision_transformer',)

    def check_supported(self, adapter: 'ModelAdapter') -> None:
        super().check_supported(adapter)
        backbone = adapter.model.backbone
        name = type(backbone).__name__
        if not backbone.with_cls_token:
            raise UnsupportedModelError(
                f'ViT Recipro-CAM needs a vision transformer with a CLS token; {name} has '
                'none. Use activationmap or eigencam, or Recipro-CAM for CNN-like backbones')
        if backbone.out_type != 'cls_token' or len(backbone.out_indices) != 1 \
                or backbone.out_indices[0] != len(backbone.layers) - 1:
            raise UnsupportedModelError(
                f'ViT Recipro-CAM needs {name} with out_type="cls_token" from the last layer '
                f'only; this one has out_type={backbone.out_type!r}, '
                f'out_indices={list(backbone.out_indices)}')
        if backbone.layers[-1].attn.v_shortcut:
            raise UnsupportedModelError('ViT Recipro-CAM does not support v_shortcut attention')

    def explain(self, adapter: 'ModelAdapter', samples: Optional[list] = None,
                targets: Optional[List[Tensor]] = None) -> Tensor:
        tokens = adapter.captured('last_block_input')
        height, width = adapter.patch_resolution
        index, weight = gaussian_token_masks(height, width, tokens.device)
        extra = masked_block_extra_tokens(adapter.model.backbone.layers[-1], tokens,
                                          adapter.num_extra_tokens, index, weight.to(tokens))
        batch = tokens.shape[0]
        scores = adapter.scores_from_extra_tokens(extra.flatten(0, 1))  # (B * P, K)
        return scores.reshape(batch, height, width, -1).permute(0, 3, 1, 2)
