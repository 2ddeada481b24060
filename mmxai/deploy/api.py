"""Python API for serving code: an exported model, one image in, predictions and maps out."""
import copy
from typing import Any, Dict, Optional, Sequence, Union

from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from ..apis.inference import ImageInput, SaliencyExplainer
from .config import use_exported_model


class ExportedSaliencyExplainer(SaliencyExplainer):
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
        score_thr (float): Detection score above which a class is explained.
        num_threads (int, optional): Runtime CPU threads.
    """

    def __init__(self, config: Union[str, Config], model_file: str,
                 runtime: Optional[str] = None, explain_all_classes: bool = False,
                 target_classes: Optional[Sequence[Union[int, str]]] = None,
                 score_thr: float = 0.3, num_threads: Optional[int] = None) -> None:
        cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
        init_default_scope(cfg.get('default_scope', 'mmdet'))
        self._build_pipelines(cfg)
        use_exported_model(cfg, model_file, None, explain_all_classes, target_classes,
                           score_thr, runtime)
        self.model = MODELS.build(dict(cfg.model, num_threads=num_threads)).eval()

    def explain(self, image: ImageInput) -> Dict[str, Any]:
        """Explain one image path or (H, W, 3) BGR uint8 array (see ``__call__``)."""
        return self([image])[0]
