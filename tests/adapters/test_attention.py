"""Token attention of multi-scale deformable attention: exactly what MMCV's module computes."""
import pytest
import torch
from mmcv.ops import MultiScaleDeformableAttention

from mmxai.adapters.attention import sampling_locations, splat_sampling_weights

SHAPES = torch.tensor([[6, 9], [3, 5], [2, 2]])  # (h, w) per level, not square: x/y order
HEADS, POINTS, DIMS = 4, 3, 32


@pytest.mark.parametrize('box_references', [False, True])
def test_splatted_attention_times_the_values_is_the_module_output(box_references):
    # MMCV's module, its offsets widened so that points fall between cells and outside
    # the levels (grid_sample's zero padding drops those corners).
    torch.manual_seed(0)
    attention = MultiScaleDeformableAttention(embed_dims=DIMS, num_heads=HEADS,
                                              num_levels=len(SHAPES), num_points=POINTS,
                                              batch_first=True).eval()
    with torch.no_grad():
        attention.sampling_offsets.weight.normal_(0, 0.5)
        attention.sampling_offsets.bias.normal_(0, 3.0)
    batch, queries = 2, 7
    tokens = int(SHAPES.prod(1).sum())
    query, value = torch.randn(batch, queries, DIMS), torch.randn(batch, tokens, DIMS)
    references = torch.rand(batch, queries, len(SHAPES), 4 if box_references else 2)
    starts = torch.cat([torch.zeros(1, dtype=torch.long), SHAPES.prod(1).cumsum(0)[:-1]])
    kept = {}
    hooks = [attention.sampling_offsets.register_forward_hook(
                 lambda m, a, out: kept.__setitem__('offsets', out)),
             attention.attention_weights.register_forward_hook(
                 lambda m, a, out: kept.__setitem__('logits', out))]
    with torch.no_grad():
        output = attention(query, value=value, identity=torch.zeros_like(query),
                           reference_points=references, spatial_shapes=SHAPES,
                           level_start_index=starts)
    for hook in hooks:
        hook.remove()

    offsets = kept['offsets'].view(batch, queries, HEADS, len(SHAPES), POINTS, 2)
    weights = kept['logits'].view(batch, queries, HEADS, -1).softmax(-1).view(
        batch, queries, HEADS, len(SHAPES), POINTS)
    locations = sampling_locations(references, offsets, SHAPES, POINTS)
    outside = (locations < 0) | (locations > 1)
    assert outside.any() and not outside.all()  # the border cases are exercised
    per_head = splat_sampling_weights(locations, weights, SHAPES, average_heads=False)
    assert per_head.shape == (batch, queries, HEADS, tokens)
    # output = output_proj(sum over tokens of A * value_proj(value)), per head.
    with torch.no_grad():
        values = attention.value_proj(value).view(batch, tokens, HEADS, DIMS // HEADS)
        mixed = torch.einsum('bqhn,bnhd->bqhd', per_head, values).flatten(2)
        expected = attention.output_proj(mixed)
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)
    # Weights sum to 1 per head but for the corners that fell outside.
    assert (per_head.sum(-1) <= 1 + 1e-5).all() and (per_head.sum(-1) < 1 - 1e-3).any()
    torch.testing.assert_close(splat_sampling_weights(locations, weights, SHAPES),
                               per_head.mean(2))
