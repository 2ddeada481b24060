"""The detector zoo: one config per MMDetection config family, explained as a new user would.

A family is a folder of the installed MMDetection's configs (``.mim/configs``).
Its representative is chosen by one rule, not by hand: the config with the
shortest file name (ties: alphabetical) that defines a ``model`` (TTA
wrappers and data-set-only files define none). It is built with random
weights, its test resize shrunk, and explained on one generated image and
its mirror image in one batch. Used by the zoo test and by
``tools/detector_support_table.py``, which writes ``docs/support-detection.md``.
"""
import copy
import os
import os.path as osp
import tempfile
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import numpy as np
from mmengine.config import Config

from mmxai.utils.config import innermost_dataset
from mmxai.utils.errors import UserInputError

#: The methods the zoo tries on every family.
ZOO_METHODS = ('classwisesaliencymap', 'activationmap')
#: The test resize of the zoo (long and short side, px).
ZOO_SIZE = 320
#: Detection score threshold in the models' test configs: random weights score
#: every class near 1 / K, which the configs' own thresholds would all drop.
ZOO_SCORE_THR = 1e-3
#: Most boxes per image and stage (``nms_pre``, ``max_per_img``) in the zoo.
ZOO_MAX_BOXES = 20
#: Most classes of a model whose every class is explained; models with more
#: (LVIS, V3Det: 13204 maps at the image's size would take 5 GiB per image)
#: explain the classes they detect, at most :data:`ZOO_MAX_BOXES`.
ZOO_MAX_CLASSES = 100


class ZooOutcome(NamedTuple):
    """What explaining one family with one method gave.

    ``status`` is ``'maps'`` (``detail``: the maps' shape), ``'refused'``
    (``detail``: the one-line error) or ``'model fails'`` (the random-weight
    model's own prediction fails, without mmxai: see :func:`_own_prediction_fails`).
    """

    family: str
    config: str
    method: str
    status: str
    detail: str


def mmdet_config_root() -> str:
    """The config folder of the installed MMDetection package."""
    import mmdet
    return osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')


def family_configs(root: Optional[str] = None) -> Dict[str, List[str]]:
    """Each config family (folder) and its configs, shortest file name first.

    Args:
        root (str, optional): A configs folder; default the installed MMDetection's.

    Returns:
        dict: Family name -> config paths in the order the representative is
        searched for (shortest name, then alphabetical).
    """
    root = root or mmdet_config_root()
    families = {}
    for family in sorted(os.listdir(root)):
        folder = osp.join(root, family)
        if family.startswith('_') or not osp.isdir(folder):
            continue
        names = sorted((name for name in os.listdir(folder) if name.endswith('.py')),
                       key=lambda name: (len(name), name))
        if names:
            families[family] = [osp.join(folder, name) for name in names]
    return families


def representative_config(configs: Sequence[str]) -> Optional[str]:
    """The first of a family's configs (see :func:`family_configs`) that defines a model.

    Configs that cannot be read (a ``_base_`` file missing from the package)
    are passed over.
    """
    for path in configs:
        try:
            cfg = Config.fromfile(path)
        except (FileNotFoundError, ImportError, SyntaxError):
            continue
        if 'model' in cfg:
            return path
    return None


def shrink_test_pipeline(cfg: Config, size: int = ZOO_SIZE) -> Config:
    """Shrink every test-time resize (and fixed pad size) of a config to ``size`` px.

    Args:
        cfg (Config): A detector config (changed in place).
        size (int): The new scale of every ``Resize``-like test step.

    Returns:
        Config: ``cfg``.
    """
    pipelines = [cfg.get('test_pipeline')]
    dataloader = cfg.get('test_dataloader')
    if dataloader is not None:
        pipelines.append(innermost_dataset(dataloader.dataset).get('pipeline'))
    for pipeline in pipelines:
        for step in _steps(pipeline or []):
            kind = str(step.get('type', ''))
            if 'Resize' in kind and 'scale' in step:
                step['scale'] = (size, size)
            if kind.endswith('Pad') and isinstance(step.get('size'), (tuple, list)):
                step['size'] = (size, size)
    return cfg


def _steps(pipeline: Any) -> List[dict]:
    """Every transform of a pipeline, inside ``TestTimeAug``'s nested lists too."""
    found = []
    for step in pipeline if isinstance(pipeline, (list, tuple)) else [pipeline]:
        if isinstance(step, (list, tuple)):
            found += _steps(step)
        elif isinstance(step, dict):
            found.append(step)
            found += _steps(step.get('transforms', []))
    return found


def lower_score_thresholds(cfg: Any, score_thr: float = ZOO_SCORE_THR,
                           max_boxes: int = ZOO_MAX_BOXES) -> Any:
    """Lower every ``score_thr`` of a model config and cap its box counts.

    Every ``score_thr`` becomes ``score_thr``, so random weights predict
    boxes; every ``nms_pre``, ``max_per_img`` and ``num_proposals`` is capped
    at ``max_boxes``, so the many low-scoring boxes stay cheap (NMS, RoIs).
    Query-based R-CNNs need their learned proposals and kept boxes equal
    (QueryInst's mask step indexes one with the other).
    """
    if isinstance(cfg, dict):
        for key, value in cfg.items():
            if key == 'score_thr' and isinstance(value, (int, float)):
                cfg[key] = score_thr
            elif key in ('nms_pre', 'max_per_img', 'num_proposals') and \
                    isinstance(value, int) and value > 0:
                cfg[key] = min(value, max_boxes)
            else:
                lower_score_thresholds(value, score_thr, max_boxes)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            lower_score_thresholds(value, score_thr, max_boxes)
    return cfg


def zoo_config(path: str, size: int = ZOO_SIZE) -> Config:
    """A family's config as the zoo runs it.

    Its test resize shrunk, score thresholds low and box counts capped.
    """
    cfg = Config.fromfile(path)
    shrink_test_pipeline(cfg, size)
    lower_score_thresholds(cfg.model)
    return cfg


def zoo_images(size: int = ZOO_SIZE, seed: int = 0) -> List[np.ndarray]:
    """One generated scene (shapes on a textured background) and its mirror image."""
    from mmxai.datasets.synthetic import SHAPE_CLASSES, scene
    image = scene(np.random.default_rng(seed), size, list(SHAPE_CLASSES), size // 6, size // 3)[0]
    return [image, np.ascontiguousarray(image[:, ::-1])]


def explain_family(family: str, cfg: Config, config_path: str,
                   methods: Sequence[str] = ZOO_METHODS,
                   images: Optional[List[np.ndarray]] = None) -> List[ZooOutcome]:
    """Explain a family's config with each method, with random weights.

    A method gives maps or a one-line refusal (:class:`UserInputError`, which
    includes ``UnsupportedModelError``); any other exception propagates.

    Args:
        family (str): The family's name.
        cfg (Config): Its config (see :func:`zoo_config`).
        config_path (str): Where the config came from (for the outcome).
        methods (Sequence[str]): Explain algorithms to try.
        images (list, optional): BGR uint8 images; default :func:`zoo_images`.

    Returns:
        list[ZooOutcome]: One per method.

    Raises:
        AssertionError: If maps come out malformed (wrong shape, not finite,
            the same for an image and its mirror image).
    """
    from mmxai.apis import SaliencyExplainer
    from tests.helpers import write_initialised_checkpoint
    images = images if images is not None else zoo_images()
    outcomes = []
    name = osp.relpath(config_path, osp.dirname(osp.dirname(config_path)))
    built = None
    for method in methods:
        try:
            if built is None:
                with tempfile.TemporaryDirectory() as folder:
                    checkpoint = write_initialised_checkpoint(cfg, osp.join(folder, 'w.pth'))
                    built = SaliencyExplainer(
                        copy.deepcopy(cfg), checkpoint, algorithm=method,
                        explain_all_classes=model_num_classes(cfg.model) <= ZOO_MAX_CLASSES,
                        score_thr=ZOO_SCORE_THR, normalize='none')
                explainer = built
            else:
                explainer = built.with_algorithm(method)
            # One image per batch: every detector takes that (GA-RPN takes no more).
            results = [explainer([image])[0] for image in images]
        except UserInputError as error:
            message = str(error)
            assert '\n' not in message.strip(), f'{family} {method}: not one line: {message}'
            outcomes.append(ZooOutcome(family, name, method, 'refused', message))
            continue
        except Exception as error:
            if built is None or not _own_prediction_fails(built, images):
                raise  # mmxai's failure: a bug, never hidden
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ''
            outcomes.append(ZooOutcome(family, name, method, 'model fails',
                                       f"the untrained model's own predict fails: "
                                       f'{type(error).__name__}: {reason}'))
            continue
        maps = [result['maps'] for result in results]
        blind = _same_predictions(results)
        _check_maps(family, method, maps, images, explainer.model.explainer.class_wise,
                    [len(result['class_names']) for result in results], not blind)
        outcomes.append(ZooOutcome(family, name, method, 'maps',
                                   'x'.join(map(str, maps[0].shape)) +
                                   (' (random weights predict the same for both images, '
                                    'or nothing)'
                                    if blind else '')))
    return outcomes


def model_num_classes(model_cfg: Any) -> int:
    """The largest ``num_classes`` of a model config's heads (an RPN's 1 is not the count)."""
    if isinstance(model_cfg, dict):
        found = [model_cfg['num_classes']] if isinstance(model_cfg.get('num_classes'), int) \
            else []
        return max(found + [model_num_classes(v) for v in model_cfg.values()] + [0])
    if isinstance(model_cfg, (list, tuple)):
        return max([model_num_classes(v) for v in model_cfg] + [0])
    return 0


def _own_prediction_fails(explainer: Any, images: List[np.ndarray]) -> bool:
    """Whether the model alone (its ``test_step``, no explainer) fails on one of ``images``.

    Untrained iterative box refinements (QueryInst's six stages) can give
    boxes that MMDetection's own mask pasting cannot take: that family is
    untestable with random weights, not refused or broken by mmxai.
    """
    import torch
    from mmengine.dataset import pseudo_collate
    for image in images:
        data = pseudo_collate([explainer.array_pipeline(dict(img=image))])
        try:
            with torch.no_grad():
                explainer.model.module.test_step(data)
        except Exception:
            return True
    return False


def _same_predictions(results: List[Dict[str, Any]]) -> bool:
    """Whether the model predicts the same for both images (input-blind) or nothing to explain.

    Some random-weight models lose the input on the way (EfficientNet's
    features vanish), and some score nothing above :data:`ZOO_SCORE_THR`
    (MS R-CNN multiplies scores by an untrained mask IoU, which is negative):
    maps made from their detections (mask maps) are then 0 for both images.
    """
    scores = [np.sort(np.asarray(r['predictions'].get('scores', []), dtype=np.float64).ravel())
              for r in results]
    if all(not (s >= ZOO_SCORE_THR).any() for s in scores):
        return True
    return scores[0].shape == scores[1].shape and np.allclose(scores[0], scores[1], atol=1e-6)


def _check_maps(family: str, method: str, maps: List[np.ndarray], images: List[np.ndarray],
                class_wise: bool, explained: List[int], must_change: bool) -> None:
    """Maps of the right shape, finite and (``must_change``) not the same for both images.

    ``explained``: per image, how many classes were explained.
    """
    where = f'{family} {method}'
    for image_maps, image, classes in zip(maps, images, explained):
        channels = classes if class_wise else 1
        assert image_maps.shape == (channels, *image.shape[:2]), \
            f'{where}: maps {image_maps.shape}, expected ({channels}, {image.shape[:2]})'
        assert np.isfinite(image_maps).all(), f'{where}: maps not finite'
    # A mirror image's maps are the first image's maps mirrored, not the same maps.
    assert not must_change or maps[0].shape != maps[1].shape or \
        not np.allclose(maps[0], maps[1]), \
        f'{where}: maps do not change with the input'
