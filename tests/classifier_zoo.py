"""One config per ``ImageClassifier`` family of the installed MMPretrain, and how mmxai fares.

A family is a folder of MMPretrain's packaged configs (``mmpretrain/.mim/configs``)
with at least one top-level config whose model is an ``ImageClassifier`` with a
head (headless feature extractors predict no class). Its representative is the
smallest: the fewest ``Parameters`` in the folder's ``metafile.yml`` (ties: the
shorter file name, which drops resolution and fine-tuning suffixes; configs it
does not list come after, by name). Nothing here
is typed per family, so an MMPretrain upgrade brings its new families along.

Used by ``tests/adapters/test_classifier_zoo.py`` (the assertions) and
``tools/classifier_support_table.py`` (the table in ``docs/support-classification.md``).
"""
import functools
import os
import os.path as osp
import tempfile
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.config import Config

from mmxai.utils.config import test_pipeline_of
from mmxai.utils.errors import UserInputError
from tests.helpers import drop_pretrained

#: The methods every family is tried with.
METHODS = ('classwisesaliencymap', 'activationmap', 'eigencam')
#: The generated image (height, width).
IMAGE_SIZE = (240, 320)
#: Classes of the random checkpoints' ``dataset_meta`` (the configs' heads keep their size).
CLASS_PREFIX = 'class'


def config_root() -> str:
    """``.mim/configs`` of the installed MMPretrain."""
    import mmpretrain
    return osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs')


def _metafile_parameters(folder: str) -> Dict[str, int]:
    """Config file name -> parameter count, as the folder's ``metafile.yml`` lists them."""
    import yaml
    path = osp.join(folder, 'metafile.yml')
    if not osp.exists(path):
        return {}
    with open(path, encoding='utf-8') as file:
        meta = yaml.safe_load(file) or {}
    counts = {}
    for model in meta.get('Models') or []:
        config = model.get('Config')
        params = (model.get('Metadata') or {}).get('Parameters')
        if config and isinstance(params, (int, float)):
            name = osp.basename(config)
            counts[name] = min(int(params), counts.get(name, int(params)))
    return counts


def _is_image_classifier(path: str) -> bool:
    try:
        cfg = Config.fromfile(path)
    except Exception:  # a config that does not even parse is no family's representative
        return False
    model = cfg.get('model') or {}
    return model.get('type') in ('ImageClassifier', 'mmpretrain.ImageClassifier') \
        and bool(model.get('head'))  # headless feature extractors predict no class


@functools.lru_cache(maxsize=None)
def classifier_families() -> Tuple[Tuple[str, str], ...]:
    """(family, config path) for every ``ImageClassifier`` family, sorted by family.

    Returns:
        tuple: Pairs of the folder name and its smallest classifier config.
    """
    root = config_root()
    families = []
    for family in sorted(os.listdir(root)):
        folder = osp.join(root, family)
        if family.startswith('_') or not osp.isdir(folder):
            continue
        params = _metafile_parameters(folder)
        names = sorted((name for name in os.listdir(folder) if name.endswith('.py')),
                       key=lambda name: (params.get(name, float('inf')), len(name), name))
        for name in names:
            if _is_image_classifier(osp.join(folder, name)):
                families.append((family, osp.join(folder, name)))
                break
    return tuple(families)


def write_random_checkpoint(cfg: Config, path: str, images: List[np.ndarray],
                            seed: int = 0) -> List[str]:
    """Build the config's model with random weights and save it as the Runner does.

    The weights are the model's own initialisation (``init_weights``), with
    every constant parameter (norm scales and biases, layer scales, zero
    tokens, zero-initialised heads) drawn around its value: an untrained
    LayerNorm's identity affine would make every token's norm the same, and a
    zero head every class score the same. Batch norms then take the
    statistics of ``images`` (a forward in training mode, as data-dependent
    initialisation does): with a fresh norm's running statistics (mean 0,
    variance 1) a deep random network's output stops depending on its input
    (EfficientNet, ConvMixer, RepVGG, TinyViT gave the same logits for any
    two images to 1e-7), and no map of it could show anything.

    The file holds ``meta.dataset_meta.classes`` and the ``state_dict`` that
    MMEngine's ``Runner.save_checkpoint`` (run by ``CheckpointHook``) writes:
    ``weights_to_cpu(model.state_dict())``, saved by ``save_checkpoint``.

    Returns:
        list: The class names written.
    """
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

    from mmxai.adapters import build_adapter
    from mmxai.models.builder import build_model
    torch.manual_seed(seed)
    model = build_model(cfg)
    model.init_weights()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.numel() > 1 and bool((parameter == parameter.flatten()[0]).all()):
                parameter.add_(torch.randn_like(parameter) * 0.1)
    _calibrate_batch_norms(model, cfg, images)
    num_classes = build_adapter(model).num_classes
    classes = [f'{CLASS_PREFIX}{index}' for index in range(num_classes)]
    save_checkpoint(dict(meta=dict(dataset_meta=dict(classes=classes)),
                         state_dict=weights_to_cpu(model.state_dict())), path)
    return classes


def _calibrate_batch_norms(model: torch.nn.Module, cfg: Config,
                           images: List[np.ndarray]) -> None:
    """Set every batch norm's running statistics to those of ``images`` (BGR arrays)."""
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope

    from mmxai.apis.inference import image_pipelines
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    init_default_scope('mmpretrain')
    _, pipeline = image_pipelines(cfg)
    batch = model.data_preprocessor(pseudo_collate([pipeline(dict(img=image))
                                                    for image in images]), False)
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: exactly the images' statistics
    model.train()
    with torch.no_grad():
        model.extract_feat(batch['inputs'])  # heads may refuse training mode (LeViT's)
    model.eval()
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum


def _half(size: int) -> int:
    """Half a size, rounded up to a multiple of 32 (HRNet's fusion needs it)."""
    return max(32, -(-size // 64) * 32)


def prepared_config(path: str, shrink: bool = True) -> Config:
    """The family's config without pretrained weights, at half its test size where it can be.

    With ``shrink``, the test pipeline's sizes (``scale``, ``crop_size``) are
    halved (up to a multiple of 32) unless
    the backbone is built for one input size (its class takes ``img_size``:
    position embeddings, token-mixing MLPs, fixed attention grids).
    """
    import inspect

    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(path)
    drop_pretrained(cfg.model)
    backbone = MODELS.get(cfg.model.backbone.type)
    if not shrink or backbone is not None and \
            'img_size' in inspect.signature(backbone.__init__).parameters:
        return cfg
    for step in test_pipeline_of(cfg):
        for key in ('scale', 'crop_size'):
            value = step.get(key)
            if isinstance(value, int):
                step[key] = _half(value)
            elif isinstance(value, (tuple, list)):
                step[key] = type(value)(_half(v) for v in value)
    return cfg


def generated_images(count: int = 2, seed: int = 0) -> List[np.ndarray]:
    """Smooth random BGR images (blobs of colour, not noise) of :data:`IMAGE_SIZE`."""
    import cv2
    rng = np.random.default_rng(seed)
    height, width = IMAGE_SIZE
    images = []
    for _ in range(count):
        small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        images.append(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC))
    return images


def unmasked_logits_error(adapter: object) -> Optional[float]:
    """Largest difference between the model's logits and its logits rebuilt from its feature map.

    Relative to the largest logit magnitude when that is above 1.

    What the mosaics of Recipro-CAM go through, given every position (the
    full map, or for models that pool right after it the pooled map), must
    be what the model does after that map. None for adapters without that
    path (vision transformers score their tokens differently; Conformer's
    scores do not come from its map alone).
    """
    from mmxai.adapters.classifier import ClassifierAdapter, combined_logits
    exact_type = type(adapter) is ClassifierAdapter
    if not (exact_type or adapter.pools_to_vectors) or not adapter.map_decides_scores:
        return None
    features = adapter.feature_maps()[-1]
    with torch.no_grad():
        logits = combined_logits(adapter.model(adapter.captured('backbone_input'),
                                               mode='tensor'))
        rebuilt = [adapter.feature_map_logits(features)]
        if adapter.pools_to_vectors:
            pooled = features.mean((-2, -1))
            rebuilt.append(adapter.pooled_logits(pooled))
            rebuilt.append(adapter.pooled_logits(pooled, wholes=pooled))  # Recipro-CAM's path
    scale = max(1.0, float(logits.abs().max()))
    return max(float((r - logits).abs().max()) for r in rebuilt) / scale


def explain_family(path: str, work_dir: Optional[str] = None,
                   methods: Tuple[str, ...] = METHODS) -> Dict[str, dict]:
    """Explain two generated images with each method on the family's config.

    The model is built with random weights, saved as MMEngine's
    ``CheckpointHook`` saves it and loaded by
    :class:`mmxai.apis.SaliencyExplainer` (mmxai's loader). The first method
    that the model accepts runs the whole user path (pipeline, forward,
    maps at the original image size, class 0); the other methods explain
    the forward pass that run captured, as one more ``ExplainModel`` would
    (one forward per family keeps the zoo within the suite's time). A model
    that fails at half its input size (fixed attention grids, windows larger
    than the map) is explained at the config's size.

    Returns:
        dict: Per method, ``{'maps': [per image (T, H, W) or (T, h, w)
        arrays], 'classes': [per image class indices], 'logits_error': see
        unmasked_logits_error}`` or ``{'refused': message}``. A refusal is a
        :class:`mmxai.utils.errors.UserInputError` (one line); anything else
        is raised.
    """
    try:
        return _explain_config(prepared_config(path), work_dir, methods)
    except UserInputError:
        raise
    except Exception:  # the model cannot take half its input size: explain at the config's
        return _explain_config(prepared_config(path, shrink=False), work_dir, methods)


def _explain_config(cfg: Config, work_dir: Optional[str],
                    methods: Tuple[str, ...]) -> Dict[str, dict]:
    """:func:`explain_family` on a prepared config."""
    from mmxai.apis import SaliencyExplainer
    from mmxai.explainers import build_explainer
    outcomes: Dict[str, dict] = {}
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        checkpoint = osp.join(tmp, 'random.pth')
        images = generated_images()
        write_random_checkpoint(cfg, checkpoint, generated_images(count=4, seed=1))
        explain_model = None
        for method in methods:
            try:
                if explain_model is None:
                    explainer = SaliencyExplainer(cfg, checkpoint, algorithm=method,
                                                  target_classes=[0])
                    explain_model = explainer.model
                    results = explainer(images)
                    maps = [r['maps'] for r in results]
                    classes = [r['classes'] for r in results]
                else:
                    adapter = explain_model.adapter
                    method_explainer = build_explainer(method, adapter.family)
                    method_explainer.check_supported(adapter)
                    with torch.no_grad():
                        found = method_explainer(adapter).cpu().numpy()
                    maps = list(found)
                    classes = [np.full(len(found[0]), -1)] * len(found)
            except UserInputError as error:
                outcomes[method] = dict(refused=f'{type(error).__name__}: {error}')
                continue
            outcomes[method] = dict(maps=maps, classes=classes,
                                    logits_error=unmasked_logits_error(explain_model.adapter))
    return outcomes
