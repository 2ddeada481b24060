"""Explain images in-process and get the maps back as arrays (notebooks)."""
import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import MODELS, init_default_scope
from torch import nn

from ..checkpoint import check_checkpoint_fits, load_checkpoint_file
from ..models import ExplainModel
from ..visualization import predictions_of, to_original_image
from .explain_config import inference_pipeline, test_pipeline_of

ImageInput = Union[str, np.ndarray]


def load_trained_model(cfg: Config, checkpoint: str) -> Tuple[nn.Module, Optional[List[str]]]:
    """Build ``cfg.model`` and load a checkpoint that must fit it exactly.

    Args:
        cfg (Config): The model's config.
        checkpoint (str): Its weights.

    Returns:
        tuple: The model (on the CPU, train mode as built) and its class
        names: the checkpoint's ``dataset_meta``, else the config's test set
        metainfo, else None.
    """
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    weights = load_checkpoint_file(checkpoint, map_location='cpu')
    check_checkpoint_fits(model, weights, checkpoint)
    state = weights.get('state_dict', weights)
    model.load_state_dict({k[len('module.'):] if k.startswith('module.') else k: v
                           for k, v in state.items()})
    meta = weights.get('meta') or {}
    classes = (meta.get('dataset_meta') or {}).get('classes') or \
        (cfg.test_dataloader.dataset.get('metainfo') or {}).get('classes')
    return model, None if classes is None else list(classes)


class SaliencyExplainer:
    """Explain a detector or classifier from its config and checkpoint.

    Example::

        explainer = SaliencyExplainer('configs/demo/atss_tiny_shapes.py', 'iter_400.pth')
        result = explainer(['a.png', cv2.imread('b.png')])[0]
        result['maps']  # (T, H, W) float32 in [0, 1] at the original resolution

    The maps equal the ``.npy`` files ``tools/explain.py --save-raw`` writes for
    the same image; nothing is written to disk.

    Args:
        config (str | Config): The model's config.
        checkpoint (str): Its weights (must fit the model exactly).
        algorithm (str | dict): Explain algorithm.
        device (str): Where the model runs.
        explain_all_classes (bool): Explain every class.
        target_classes (Sequence[int], optional): Classes to explain.
        score_thr (float): Detection score above which a class is explained.
    """

    def __init__(self, config: Union[str, Config], checkpoint: str,
                 algorithm: Union[str, dict] = 'classwisesaliencymap', device: str = 'cpu',
                 explain_all_classes: bool = False,
                 target_classes: Optional[Sequence[int]] = None, score_thr: float = 0.3) -> None:
        cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
        model, classes = load_trained_model(cfg, checkpoint)
        self.model = ExplainModel(model, explainer=algorithm,
                                  explain_all_classes=explain_all_classes,
                                  target_classes=target_classes, score_thr=score_thr,
                                  class_names=classes).to(device).eval()
        self._build_pipelines(cfg)

    def _build_pipelines(self, cfg: Config) -> None:
        """The test pipeline (minus annotations) from files and from arrays."""
        steps = inference_pipeline(test_pipeline_of(cfg))
        self.file_pipeline = Compose(steps)
        self.array_pipeline = Compose([dict(type='mmxai.LoadImageFromArray'), *steps[1:]])

    @torch.no_grad()
    def __call__(self, images: Sequence[ImageInput]) -> List[Dict[str, Any]]:
        """Explain a batch of image paths and/or (H, W, 3) BGR uint8 arrays.

        Returns:
            list[dict]: Per image: ``maps`` (T, H, W) float32 in [0, 1] at the
            original resolution, ``classes`` (T,) class indices (-1 for a
            class-agnostic map), ``class_names`` and ``predictions``.
        """
        items = [self.file_pipeline(dict(img_path=image)) if isinstance(image, str)
                 else self.array_pipeline(dict(img=image)) for image in images]
        samples = self.model.test_step(pseudo_collate(items))
        return [dict(maps=to_original_image(s.saliency_map, s.metainfo).cpu().numpy()
                     .astype(np.float32),
                     classes=s.explained_classes.cpu().numpy(),
                     class_names=list(s.metainfo['explained_class_names']),
                     predictions=predictions_of(s)) for s in samples]
