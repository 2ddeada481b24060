"""ViT Recipro-CAM and class-agnostic maps on vision transformers."""
import pytest
import torch

from mmxai.explainers import ViTReciproCAM
from mmxai.explainers.vit_recipro_cam import last_block_extra_tokens, token_masks
from mmxai.models import ExplainModel
from mmxai.utils import UnknownAlgorithmError, UnsupportedModelError
from tests.helpers import build_model, cls_batch, load_config, random_images

SIZE = 128  # 8 x 8 patches of 16 px
SMALL_ARCH = dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)
T2T = 'mmpretrain::t2t_vit/t2t-vit-t-14_8xb64_in1k.py'
TNT = 'mmpretrain::tnt/tnt-s-p16_16xb64_in1k.py'
XCIT = 'mmpretrain::xcit/xcit-nano-12-p8_8xb128_in1k.py'
#: Small backbones of 64 channels on 8 x 8 patch grids, per config outside ViT's ``arch``.
SMALL_BACKBONES = {
    T2T: dict(embed_dims=64, num_layers=3, layer_cfgs=dict(num_heads=4)),
    TNT: dict(arch=dict(embed_dims_inner=16, embed_dims_outer=64, num_layers=2,
                        num_heads_inner=2, num_heads_outer=4)),
    XCIT: dict(embed_dims=64, depth=2, cls_attn_layers=2, num_heads=4, patch_size=16),
}


def _vit(config='mmpretrain::deit/deit-tiny_4xb256_in1k.py', **backbone):
    cfg = load_config(config)
    cfg.model.backbone.update(**SMALL_BACKBONES.get(config, dict(arch=SMALL_ARCH)),
                              img_size=SIZE, **backbone)
    cfg.model.head.update(num_classes=3, in_channels=64)
    cfg.model.train_cfg = None
    model = build_model(cfg)
    # The config's initialisation (a zero classifier, tiny attention weights) makes nearly
    # constant maps: draw every linear layer at unit gain (attention logits sharper), so
    # that the mosaics matter.
    generator = torch.Generator().manual_seed(0)
    for name, layer in model.named_modules():
        if isinstance(layer, torch.nn.Linear):
            gain = 3.0 if name.endswith('attn.qkv') else 1.0
            layer.weight.data.normal_(0, gain * layer.in_features ** -0.5, generator=generator)
            if layer.bias is not None:
                layer.bias.data.normal_(0, 0.1, generator=generator)
        if isinstance(layer, torch.nn.LayerNorm):  # an identity affine hides what is normalised
            layer.weight.data.normal_(1, 0.2, generator=generator)
            layer.bias.data.normal_(0, 0.1, generator=generator)
        if type(layer).__name__ == 'LayerScale':  # DeiT III: 1e-5 would mute every block
            layer.weight.data.fill_(1.0)
    return model


@pytest.fixture(scope='module')
def vit():
    return _vit()


def _explain(model, images, algorithm='classwisesaliencymap', **kwargs):
    explain = ExplainModel(model, explainer=algorithm, explain_all_classes=True, **kwargs)
    samples = explain.test_step(cls_batch(images))
    return explain, torch.stack([s.saliency_map for s in samples])


KERNEL = torch.tensor([[1 / 16, 1 / 8, 1 / 16], [1 / 8, 1 / 4, 1 / 8], [1 / 16, 1 / 8, 1 / 16]])


def _mosaic_weights(height, width, use_gaussian):
    """(P, h * w) weight of every patch token in every mosaic, built as OTX 1.x and
    openvino-xai build it: the 3x3 kernel pasted on a zero-padded grid, then cropped."""
    padded = torch.zeros(height * width, height + 2, width + 2)
    for i in range(height):
        for j in range(width):
            if use_gaussian:
                padded[i * width + j, i:i + 3, j:j + 3] = KERNEL
            else:
                padded[i * width + j, i + 1, j + 1] = 1.0
    return padded[:, 1:-1, 1:-1].flatten(1)


def _block_and_first_norm(backbone, target_layer):
    """The block the published definition masks at, and its first LayerNorm, as each
    architecture names them: a CLS token and all patch tokens meet in ViT's and DeiT's
    ``layers``, T2T-ViT's ``encoder``, TNT's outer blocks and XCiT's class-attention blocks."""
    name = type(backbone).__name__
    if name == 'T2T_ViT':
        block = backbone.encoder[target_layer]
        return block, block.ln1
    if name == 'TNT':
        block = backbone.layers[target_layer].outer_block
        return block, block.norm_attn
    if name == 'XCiT':
        block = backbone.ca_layers[target_layer]
        return block, block.norm1
    block = backbone.layers[target_layer]
    return block, block.ln1


def _reference_maps(model, images, target_layer=-1, use_gaussian=True, cls_token=True):
    """The published definition on the real model: one real pass records the target block's
    input and its first LayerNorm's output; then, per mosaic, a forward hook makes that norm
    return the masked normalised tokens and a pre-hook feeds the block its input masked
    likewise, and the real model (that block, the later blocks, the final norm, the head)
    scores the classes."""
    inputs = model.data_preprocessor(cls_batch(images))['inputs']
    backbone = model.backbone
    block, first_norm = _block_and_first_norm(backbone, target_layer)
    num_extra_tokens = getattr(backbone, 'num_extra_tokens', 1)  # TNT, XCiT: the CLS token
    seen = {}
    hooks = [block.register_forward_pre_hook(lambda _m, args: seen.update(tokens=args[0])),
             first_norm.register_forward_hook(
                 lambda _m, _a, out: seen.setdefault('normed', out))]
    with torch.no_grad():
        model(inputs, mode='tensor')
    for hook in hooks:
        hook.remove()
    height = width = SIZE // 16
    patches = _mosaic_weights(height, width, use_gaussian)
    extra = torch.full((patches.shape[0], num_extra_tokens), float(cls_token))
    weights = torch.cat([extra, patches], dim=1)  # (P, E + N)

    def masked(tokens):
        return (tokens[:, None] * weights[None, :, :, None]).flatten(0, 1)  # (B * P, E + N, C)

    first_call = []

    def mask_block_input(_module, _args):
        first_call.append(True)
        return (masked(seen['tokens']),)

    def mask_first_ln1_output(_module, _args, output):
        # the attention's input; DeiT III calls ln1 again on the FFN's input, unmasked
        return masked(seen['normed']) if first_call and first_call.pop() else output

    hooks = [block.register_forward_pre_hook(mask_block_input),
             first_norm.register_forward_hook(mask_first_ln1_output)]
    try:
        with torch.no_grad():
            scores = model(inputs, mode='tensor').softmax(1)
    finally:
        for hook in hooks:
            hook.remove()
    return scores.reshape(len(images), height, width, -1).permute(0, 3, 1, 2)


@pytest.mark.parametrize('config, options', [
    ('mmpretrain::deit/deit-tiny_4xb256_in1k.py', {}),
    ('mmpretrain::deit/deit-tiny-distilled_4xb256_in1k.py', {}),
    ('mmpretrain::deit/deit-tiny_4xb256_in1k.py', dict(use_gaussian=False)),
    ('mmpretrain::deit/deit-tiny_4xb256_in1k.py', dict(cls_token=False)),
    ('mmpretrain::deit/deit-tiny_4xb256_in1k.py', dict(target_layer=-2)),
    ('mmpretrain::deit/deit-tiny-distilled_4xb256_in1k.py', dict(target_layer=0,
                                                                 cls_token=False)),
    ('mmpretrain::deit3/deit3-small-p16_64xb64_in1k.py', {}),
    ('mmpretrain::deit3/deit3-small-p16_64xb64_in1k.py', dict(target_layer=-2)),
    (T2T, {}),
    (T2T, dict(target_layer=0, cls_token=False)),
    (TNT, {}),
    (TNT, dict(use_gaussian=False)),
    (XCIT, {}),
    (XCIT, dict(target_layer=0)),
])
def test_maps_equal_mosaics_at_the_output_of_the_real_first_layernorm(config, options):
    model = _vit(config)
    images = random_images(2, SIZE, SIZE)
    explain, maps = _explain(model, images, dict(algorithm='classwisesaliencymap', **options))
    assert isinstance(explain.explainer, ViTReciproCAM)
    assert maps.shape == (2, 3, 8, 8)
    assert maps.flatten(2).std(-1).min() > 1e-4  # the maps are not constant
    reference = _reference_maps(model, images, **options)
    torch.testing.assert_close(maps, reference, rtol=1e-4, atol=1e-5)


def test_the_gaussian_kernel_changes_the_maps_against_a_single_token(vit):
    images = random_images(2, SIZE, SIZE, seed=3)
    _, gaussian = _explain(vit, images)
    _, single = _explain(vit, images, dict(algorithm='classwisesaliencymap', use_gaussian=False))
    assert (gaussian - single).abs().max() > 1e-2
    # Masking normalised tokens keeps the kernel's weights: halving them changes the maps
    # (masking before the LayerNorm, they cancelled).
    explain = ExplainModel(vit, explainer='classwisesaliencymap', explain_all_classes=True)
    with torch.no_grad():
        explain.test_step(cls_batch(images))
        tokens = explain.adapter.block_input(-1)
        index, weight = token_masks(8, 8, True, tokens.device)
        args = (vit.backbone.layers[-1], tokens, 1, index)
        full = last_block_extra_tokens(*args, weight, True)
        half = last_block_extra_tokens(*args, weight / 2, True)
    assert (full - half).abs().max() > 1e-3


def test_probabilities_and_batch_consistency(vit):
    images = random_images(3, SIZE, SIZE, seed=4)
    _, maps = _explain(vit, images)
    torch.testing.assert_close(maps.sum(1), torch.ones(3, 8, 8))
    single = torch.cat([_explain(vit, [image])[1] for image in images])
    torch.testing.assert_close(maps, single, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('config', ['mmpretrain::deit/deit-tiny_4xb256_in1k.py', T2T, TNT,
                                    XCIT])
def test_class_agnostic_maps_use_final_patch_tokens_on_the_grid(config):
    model = _vit(config)
    backbone = model.backbone
    final_norm = backbone.ln1 if hasattr(backbone, 'ln1') else backbone.norm
    seen = {}
    hook = final_norm.register_forward_hook(lambda _m, _a, out: seen.update(tokens=out))
    images = random_images(2, SIZE, SIZE, seed=5)
    try:
        explain, maps = _explain(model, images, 'activationmap')
    finally:
        hook.remove()
    tokens = seen['tokens'][:, getattr(backbone, 'num_extra_tokens', 1):]  # row-major 8 x 8
    expected = tokens.norm(dim=-1).reshape(2, 1, 8, 8)  # LayerNorm'd tokens have both signs
    torch.testing.assert_close(maps, expected)
    assert explain.adapter.cell_anchor == 'center'
    _, maps = _explain(model, images, 'eigencam')
    assert maps.shape == (2, 1, 8, 8) and torch.isfinite(maps).all()


def test_masks_are_the_references_3x3_gaussians_cut_at_the_border():
    index, weight = token_masks(4, 5, True, torch.device('cpu'))
    assert index.shape == weight.shape == (20, 9)
    corner = dict(zip(index[0].tolist(), weight[0].tolist()))
    assert weight[0].gt(0).sum() == 4
    assert (corner[0], corner[1], corner[5], corner[6]) == (1 / 4, 1 / 8, 1 / 8, 1 / 16)
    assert weight[2 * 5 + 2].gt(0).sum() == 9 and weight[2 * 5 + 2].sum() == 1.0
    index, weight = token_masks(4, 5, False, torch.device('cpu'))
    assert index[:, 0].tolist() == list(range(20)) and weight.eq(1).all()


def test_bad_options_and_blocks_are_clear_errors(vit):
    with pytest.raises(UnsupportedModelError, match='target_layer=-3 is out of range'):
        ExplainModel(vit, explainer=dict(algorithm='classwisesaliencymap', target_layer=-3))
    with pytest.raises(UnknownAlgorithmError, match='block index'):
        ExplainModel(vit, explainer=dict(algorithm='classwisesaliencymap',
                                         target_layer='layers.1'))
    # Blocks of another shape than x + attn(ln1(x)), ffn(norm(x)) are refused by name.
    model = _vit()
    other = type('OtherEncoderLayer', (torch.nn.Module,), dict(forward=lambda self, x: x))
    model.backbone.layers[-1].__class__ = other
    with pytest.raises(UnsupportedModelError, match='OtherEncoderLayer.*activationmap'):
        ExplainModel(model, explainer='classwisesaliencymap')


def test_tnt_explains_at_its_last_block_only():
    """TNT's outer blocks after the target would also need its inner pixel tokens."""
    with pytest.raises(UnsupportedModelError, match='TNT explains at its last block only'):
        ExplainModel(_vit(TNT), explainer=dict(algorithm='classwisesaliencymap',
                                               target_layer=0))


def test_transformer_without_cls_token_gets_a_clear_error():
    model = _vit(with_cls_token=False, out_type='featmap')
    with pytest.raises(UnsupportedModelError, match='CLS token'):
        ExplainModel(model, explainer='classwisesaliencymap')


def test_averaged_final_tokens_get_recipro_cam_through_the_backbones_ln2():
    """out_type='avg_featmap' (MAE fine-tuning): no CLS token scores; the backbone averages
    its final patch tokens and normalises the average with ln2. Recipro-CAM: the mosaic
    keeping only token (i, j) averages to that token / (h * w), which ln2 normalises with
    the mean and variance of the image's own average (the affine map it applied to it)."""
    model = _vit(with_cls_token=False, out_type='avg_featmap')
    images = random_images(2, SIZE, SIZE)
    explain, maps = _explain(model, images)
    assert maps.shape == (2, 3, 8, 8) and maps.flatten(2).std(-1).min() > 1e-4
    inputs = model.data_preprocessor(cls_batch(images))['inputs']
    seen = {}
    last = model.backbone.ln1 if model.backbone.final_norm else model.backbone.layers[-1]
    hook = last.register_forward_hook(lambda _m, _a, out: seen.update(tokens=out))
    with torch.no_grad():
        logits = model(inputs, mode='tensor')
    hook.remove()
    patches = seen['tokens'][:, model.backbone.num_extra_tokens:]  # (B, 64, C)
    with torch.no_grad():  # every position kept: the model's own logits
        rebuilt = model.head((model.backbone.ln2(patches.mean(1)),))
        torch.testing.assert_close(rebuilt, logits, rtol=1e-5, atol=1e-5)
        ln2, whole = model.backbone.ln2, patches.mean(1, keepdim=True)  # (B, 1, C)
        mean = whole.mean(-1, keepdim=True)
        variance = ((whole - mean) ** 2).mean(-1, keepdim=True)
        shares = patches / 64  # each mosaic's average: one token, the others zero
        normalised = (shares - mean) / torch.sqrt(variance + ln2.eps) * ln2.weight + ln2.bias
        reference = model.head((normalised.flatten(0, 1),))
    reference = reference.softmax(1).reshape(2, 8, 8, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(maps, reference, rtol=1e-4, atol=1e-6)
    _, maps = _explain(model, images, 'activationmap')
    assert maps.shape == (2, 1, 8, 8)


def test_swin_uses_spatial_recipro_cam_on_its_final_feature_map():
    """Swin has no CLS token but outputs a (B, C, h, w) map before a GAP neck:
    Recipro-CAM's spatial mosaics apply to it as to a CNN."""
    cfg = load_config('mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py')
    cfg.model.backbone.update(arch=dict(embed_dims=32, depths=[1, 1, 1, 1],
                                        num_heads=[1, 2, 2, 4]), img_size=256)
    cfg.model.head.update(num_classes=3, in_channels=256)
    cfg.model.train_cfg = None
    model = build_model(cfg)
    explain, maps = _explain(model, random_images(2, 256, 256))
    assert type(explain.explainer).__name__ == 'ReciproCAM'
    assert explain.adapter.pools_to_vectors
    assert maps.shape == (2, 3, 8, 8)
    torch.testing.assert_close(maps.sum(1), torch.ones(2, 8, 8))
    assert tuple(explain.adapter.level_grids()[0]) == (32, 32, 16, 16)  # patches' centres
