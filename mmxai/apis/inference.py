"""Explain images in-process and get the maps back as arrays (notebooks)."""
import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import MODELS, init_default_scope

from ..models import ExplainModel, SaliencyModel, build_model, maps_on_original_image
from ..utils.config import input_channels, test_pipeline_of
from ..visualization import predictions_of
from .explain_config import inference_pipeline, use_exported_model

ImageInput = Union[str, np.ndarray]


def image_pipelines(cfg: Config) -> Tuple[Compose, Compose]:
    """The config's inference pipeline for image files, and the same for BGR arrays.

    The array pipeline loads with :class:`mmxai.LoadImageFromArray` (with the
    file loader's ``to_float32`` and colour type) instead of the file loader.
    """
    steps = inference_pipeline(test_pipeline_of(cfg), input_channels(cfg))
    array_loader = dict(type='mmxai.LoadImageFromArray',
                        to_float32=steps[0].get('to_float32', False),
                        color_type=steps[0].get('color_type', 'color'))
    return Compose(steps), Compose([array_loader, *steps[1:]])


class ImageExplainer:
    """Explain images with an explain-mode model through its config's test pipeline.

    The base of :class:`SaliencyExplainer` (a PyTorch model) and
    :class:`ExportedSaliencyExplainer` (an exported one): any
    :class:`~mmxai.models.SaliencyModel` works the same way here.

    Args:
        cfg (Config): The model's config (its test pipeline is used).
        model (SaliencyModel): The explain-mode model, ready to run.
        normalize (str): ``'per_map'`` (as the tool's default), ``'absolute'``
            (the method's own fixed scale) or ``'none'`` (the method's values).
    """

    def __init__(self, cfg: Config, model: SaliencyModel, normalize: str = 'per_map') -> None:
        self.model = model
        self.normalize = normalize
        self.file_pipeline, self.array_pipeline = image_pipelines(cfg)

    @torch.no_grad()
    def __call__(self, images: Sequence[ImageInput]) -> List[Dict[str, Any]]:
        """Explain a batch of image paths and/or (H, W, 3) BGR uint8 arrays.

        Returns:
            list[dict]: Per image: ``maps`` (T, H, W) float32 at the original
            resolution (in [0, 1], or the method's own values for
            ``normalize='none'``), ``classes`` (T,) class indices (-1 for a
            class-agnostic map), ``class_names`` and ``predictions``.
        """
        items = [self.file_pipeline(dict(img_path=image)) if isinstance(image, str)
                 else self.array_pipeline(dict(img=image)) for image in images]
        samples = self.model.test_step(pseudo_collate(items))
        return [dict(maps=maps_on_original_image(s.saliency_map, s.metainfo, self.normalize)
                     .cpu().numpy().astype(np.float32),
                     classes=s.explained_classes.cpu().numpy(),
                     class_names=list(s.metainfo['explained_class_names']),
                     predictions=predictions_of(s)) for s in samples]


class SaliencyExplainer(ImageExplainer):
    """Explain a detector or classifier from its config and checkpoint.

    Example::

        explainer = SaliencyExplainer('configs/demo/atss_tiny_shapes.py', 'iter_400.pth')
        result = explainer(['a.png', cv2.imread('b.png')])[0]
        result['maps']  # (T, H, W) float32 in [0, 1] at the original resolution

    The maps equal the ``.npy`` files ``tools/explain.py --save-raw`` writes for
    the same image; nothing is written to disk.

    Args:
        config (str | Config): The model's config.
        checkpoint (str, optional): Its weights, by path or URL (any scheme
            MMEngine's ``CheckpointLoader`` takes; loaded weights-only, URLs cached
            in torch.hub's folder); they must fit the model exactly. None keeps the
            weights the model is built with (random, for tests).
        algorithm (str | dict): Explain algorithm.
        device (str): Where the model runs.
        explain_all_classes (bool): Explain every class.
        target_classes (Sequence[int], optional): Classes to explain.
        score_thr (float, optional): Detection score above which a class is
            explained (None: the algorithm's own ``score_thr``, else 0.3).
        normalize (str): ``'per_map'`` (as the tool's default), ``'absolute'``
            (the method's own fixed scale) or ``'none'`` (the method's values).
    """

    def __init__(self, config: Union[str, Config], checkpoint: Optional[str],
                 algorithm: Union[str, dict] = 'classwisesaliencymap', device: str = 'cpu',
                 explain_all_classes: bool = False,
                 target_classes: Optional[Sequence[int]] = None,
                 score_thr: Optional[float] = None, normalize: str = 'per_map') -> None:
        cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
        model = build_model(cfg, checkpoint, device)
        self._score_thr = score_thr
        super().__init__(cfg, ExplainModel(
            model, explainer=algorithm, explain_all_classes=explain_all_classes,
            target_classes=target_classes, score_thr=score_thr,
            class_names=model.dataset_meta.get('classes')).to(device).eval(), normalize)

    def with_algorithm(self, algorithm: Union[str, dict]) -> 'SaliencyExplainer':
        """The same model, classes and pipelines, explained with another algorithm.

        Nothing is built or loaded again: the new explainer wraps the same
        model (compare methods on one model without rebuilding it).
        """
        other = copy.copy(self)
        current = self.model
        targets = current.targets
        other.model = ExplainModel(current.module, explainer=algorithm,
                                   explain_all_classes=targets.explain_all_classes,
                                   target_classes=targets.target_classes,
                                   score_thr=self._score_thr,
                                   class_names=targets.class_names).eval()
        return other


class ExportedSaliencyExplainer(ImageExplainer):
    """Explain images with an exported model (ONNX Runtime or OpenVINO); no PyTorch model.

    Example::

        explainer = ExportedSaliencyExplainer('configs/demo/atss_tiny_shapes.py',
                                              'export/atss_tiny_shapes.xml')
        result = explainer.explain(cv2.imread('image.png'))   # one BGR array or path
        result['predictions'], result['maps'], result['class_names']

    The results are those of :class:`mmxai.apis.SaliencyExplainer` (maps in
    [0, 1] at the original resolution, per explained class), computed by the
    exported graph; the config gives the test pipeline, the data
    preprocessor and the head's post-processing (decoding, NMS).

    Args:
        config (str | Config): The model's config.
        model_file (str): ``.onnx`` or ``.xml`` written by ``tools/export.py``.
        runtime (str, optional): ``'onnxruntime'`` or ``'openvino'`` (default by file).
        explain_all_classes (bool): Explain every class.
        target_classes (Sequence[int | str], optional): Classes to explain.
        score_thr (float, optional): Detection score above which a class is
            explained (None: 0.3).
        num_threads (int, optional): Runtime CPU threads.
        normalize (str): As for :class:`SaliencyExplainer`.
    """

    def __init__(self, config: Union[str, Config], model_file: str,
                 runtime: Optional[str] = None, explain_all_classes: bool = False,
                 target_classes: Optional[Sequence[Union[int, str]]] = None,
                 score_thr: Optional[float] = None, num_threads: Optional[int] = None,
                 normalize: str = 'per_map') -> None:
        cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
        init_default_scope(cfg.get('default_scope', 'mmdet'))
        use_exported_model(cfg, model_file, None, explain_all_classes, target_classes,
                           score_thr, runtime)
        super().__init__(cfg, MODELS.build(dict(cfg.model, num_threads=num_threads)).eval(),
                         normalize)

    def explain(self, image: ImageInput) -> Dict[str, Any]:
        """Explain one image path or (H, W, 3) BGR uint8 array (see ``__call__``)."""
        return self([image])[0]
