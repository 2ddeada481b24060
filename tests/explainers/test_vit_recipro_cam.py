"""ViT Recipro-CAM and class-agnostic maps on vision transformers."""
import pytest
import torch

from mmxai.explainers import ViTReciproCAM
from mmxai.explainers.vit_recipro_cam import gaussian_token_masks
from mmxai.models import ExplainModel
from mmxai.utils import UnsupportedModelError
from tests.helpers import build_model, cls_batch, load_config, random_images

SIZE = 128  # 8 x 8 patches of 16 px
SMALL_ARCH = dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)


def _vit(config='mmpretrain::deit/deit-tiny_4xb256_in1k.py', **backbone):
    cfg = load_config(config)
    cfg.model.backbone.update(arch=SMALL_ARCH, img_size=SIZE, **backbone)
    cfg.model.head.update(num_classes=3, in_channels=64)
    cfg.model.train_cfg = None
    return build_model(cfg)


@pytest.fixture(scope='module')
def vit():
    return _vit()


def _explain(model, images, algorithm='classwisesaliencymap', **kwargs):
    explain = ExplainModel(model, explainer=algorithm, explain_all_classes=True, **kwargs)
    samples = explain.test_step(cls_batch(images))
    return explain, torch.stack([s.saliency_map for s in samples])


def _explicit_token_masking(model, tokens):
    """Reference: every masked token set through the real last block, norm and head."""
    backbone = model.backbone
    extra = backbone.num_extra_tokens
    height = width = SIZE // 16
    index, weight = gaussian_token_masks(height, width, tokens.device)
    masks = torch.zeros(index.shape[0], height * width)
    masks.scatter_add_(1, index, weight)  # border neighbours have weight 0
    patches = tokens[:, extra:]  # (B, N, C)
    masked = patches[:, None] * masks[None, :, :, None]  # (B, P, N, C)
    cls = tokens[:, None, :extra].expand(-1, masked.shape[1], -1, -1)
    x = torch.cat([cls, masked], dim=2).flatten(0, 1)
    x = backbone.layers[-1](x)
    if backbone.final_norm:
        x = backbone.ln1(x)
    feats = (x[:, 0], x[:, 1]) if extra == 2 else x[:, 0]
    scores = model.head((feats, )).softmax(1)
    return scores.reshape(tokens.shape[0], height, width, -1).permute(0, 3, 1, 2)


@pytest.mark.parametrize('config', ['mmpretrain::deit/deit-tiny_4xb256_in1k.py',
                                    'mmpretrain::deit/deit-tiny-distilled_4xb256_in1k.py'])
def test_fast_path_equals_explicit_token_masking(config):
    model = _vit(config)
    explain, maps = _explain(model, random_images(2, SIZE, SIZE))
    assert isinstance(explain.explainer, ViTReciproCAM)
    assert maps.shape == (2, 3, 8, 8)
    with torch.no_grad():
        reference = _explicit_token_masking(model, explain.adapter.captured('last_block_input'))
    torch.testing.assert_close(maps, reference, rtol=1e-4, atol=1e-5)


def test_probabilities_and_batch_consistency(vit):
    images = random_images(3, SIZE, SIZE, seed=4)
    _, maps = _explain(vit, images)
    torch.testing.assert_close(maps.sum(1), torch.ones(3, 8, 8))
    single = torch.cat([_explain(vit, [image])[1] for image in images])
    torch.testing.assert_close(maps, single, rtol=1e-4, atol=1e-6)


def test_class_agnostic_maps_use_final_patch_tokens_on_the_grid(vit):
    images = random_images(2, SIZE, SIZE, seed=5)
    explain, maps = _explain(vit, images, 'activationmap')
    tokens = explain.adapter.captured('last_tokens')[:, 1:]
    expected = tokens.norm(dim=-1).reshape(2, 1, 8, 8)  # LayerNorm'd tokens have both signs
    torch.testing.assert_close(maps, expected)
    assert explain.adapter.cell_anchor == 'center'
    _, maps = _explain(vit, images, 'eigencam')
    assert maps.shape == (2, 1, 8, 8) and torch.isfinite(maps).all()


def test_masks_are_3x3_gaussians_clipped_at_the_border():
    index, weight = gaussian_token_masks(4, 5, torch.device('cpu'))
    assert index.shape == weight.shape == (20, 9)
    corner = dict(zip(index[0].tolist(), weight[0].tolist()))
    assert weight[0].gt(0).sum() == 4 and corner[0] == 1.0 and corner[6] == 0.25
    assert weight[2 * 5 + 2].gt(0).sum() == 9


def test_transformer_without_cls_token_gets_a_clear_error():
    model = _vit(with_cls_token=False, out_type='avg_featmap')
    with pytest.raises(UnsupportedModelError, match='CLS token'):
        ExplainModel(model, explainer='classwisesaliencymap')
    _, maps = _explain(model, random_images(1, SIZE, SIZE), 'activationmap')
    assert maps.shape == (1, 1, 8, 8)


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
    assert explain.adapter.neck_is_global_average_pooling
    assert maps.shape == (2, 3, 8, 8)
    torch.testing.assert_close(maps.sum(1), torch.ones(2, 8, 8))
    assert explain.adapter.cell_anchor == 'center'
