"""Point an explain-mode config at an exported model instead of a checkpoint."""
import copy
from typing import Optional, Sequence, Union

from mmengine.config import Config


def use_exported_model(cfg: Config, model_file: str,
                       algorithm: Optional[Union[str, dict]] = None,
                       explain_all_classes: bool = False,
                       target_classes: Optional[Sequence[Union[int, str]]] = None,
                       score_thr: float = 0.3, runtime: Optional[str] = None) -> Config:
    """Make ``cfg``'s Runner run ``model_file`` (in place); returns ``cfg``.

    ``cfg.model`` becomes :class:`~mmxai.deploy.ExportedExplainModel` around
    the file (keeping the original model section for the data preprocessor
    and the head's post-processing), nothing is loaded as a checkpoint, and
    :class:`~mmxai.engine.hooks.PrepareExplainHook` is dropped: the exported
    model already explains. :class:`~mmxai.engine.hooks.ExplainHook` writes as usual.

    Args:
        cfg (Config): An explain-mode config (see :func:`mmxai.apis.explain_config`).
        model_file (str): ``.onnx`` or ``.xml`` written by ``tools/export.py``.
        algorithm (str | dict, optional): Must be the exported one (None: that one).
        explain_all_classes (bool): Explain every class.
        target_classes (Sequence[int | str], optional): Classes to explain.
        score_thr (float): Detection score above which a class is explained.
        runtime (str, optional): ``'onnxruntime'`` or ``'openvino'``.
    """
    model_cfg = copy.deepcopy(cfg.model)
    if 'data_preprocessor' not in model_cfg and cfg.get('data_preprocessor'):
        model_cfg['data_preprocessor'] = copy.deepcopy(cfg.data_preprocessor)
    metainfo = cfg.test_dataloader.dataset.get('metainfo') or {}
    cfg.model = dict(type='mmxai.ExportedExplainModel', model_file=model_file,
                     model_cfg=model_cfg, explainer=algorithm,
                     explain_all_classes=explain_all_classes, target_classes=target_classes,
                     score_thr=score_thr, class_names=metainfo.get('classes'), runtime=runtime)
    cfg.pop('data_preprocessor', None)  # the Runner would pass it to the wrapper too
    cfg.load_from = None
    cfg.custom_hooks = [hook for hook in cfg.get('custom_hooks', [])
                        if 'PrepareExplainHook' not in str(hook.get('type', ''))]
    return cfg
