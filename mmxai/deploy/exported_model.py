"""Run an exported model in MMEngine's Runner as explain mode runs the PyTorch one."""
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.structures import BaseDataElement
from torch import Tensor

from ..geometry import CellGrid
from ..models.saliency_model import SaliencyModel
from ..models.saliency_targets import SaliencyTargets, resolve_classes
from ..registry import MODELS
from ..utils.defaults import DEFAULT_SCORE_THR
from ..utils.errors import ExportedModelError
from .metadata import SALIENCY_OUTPUT
from .predictions import build_decoder
from .runtime import open_session


@MODELS.register_module()
class ExportedExplainModel(BaseModel, SaliencyModel):
    """An exported model (ONNX Runtime or OpenVINO) that predicts and explains like ExplainModel.

    The config's data preprocessor prepares the batch; the batch is padded
    (bottom and right, with the preprocessor's ``pad_value``, as a batch is
    padded) to the exported input size; the runtime computes the model's
    outputs and ``saliency_map``; MMDetection's / MMPretrain's own
    post-processing makes the predictions (see :mod:`mmxai.deploy.predictions`);
    the maps of the explained classes are attached as
    :class:`~mmxai.models.ExplainModel` attaches them, so the Runner,
    :class:`~mmxai.engine.hooks.ExplainHook` and the writer treat both alike.

    Args:
        model_file (str): ``.onnx`` or ``.xml`` written by ``tools/export.py``.
        model_cfg (dict): The ``model`` section of the model's config (data
            preprocessor, head and ``test_cfg``).
        explainer (str, optional): The algorithm asked for; must be the one
            exported (None: the exported one).
        explain_all_classes (bool): Explain every class.
        target_classes (Sequence[int | str], optional): Classes to explain.
        score_thr (float, optional): Detection score above which a class is
            explained (None: 0.3).
        class_names (Sequence[str], optional): Names when the exported model
            has none stored.
        runtime (str, optional): ``'onnxruntime'`` or ``'openvino'`` (default by file).
        num_threads (int, optional): Runtime CPU threads.
        data_preprocessor (dict, optional): Overrides ``model_cfg``'s (the
            Runner passes a config's top-level ``data_preprocessor`` here).
    """

    #: Data preprocessor of a task when the config names none (as the models default).
    DEFAULT_PREPROCESSORS = {'classification': 'mmpretrain.ClsDataPreprocessor',
                             'detection': 'mmdet.DetDataPreprocessor'}
    #: Registry scope of each task's config types.
    SCOPES = {'classification': 'mmpretrain', 'detection': 'mmdet'}

    def __init__(self,
                 model_file: str,
                 model_cfg: dict,
                 explainer: Optional[Union[str, dict]] = None,
                 explain_all_classes: bool = False,
                 target_classes: Optional[Sequence[Union[int, str]]] = None,
                 score_thr: Optional[float] = None,
                 class_names: Optional[Sequence[str]] = None,
                 runtime: Optional[str] = None,
                 num_threads: Optional[int] = None,
                 data_preprocessor: Optional[dict] = None) -> None:
        model_cfg = ConfigDict(model_cfg)
        session = open_session(model_file, runtime, num_threads)
        meta = session.metadata
        preprocessor = dict(data_preprocessor or model_cfg.get('data_preprocessor') or {})
        preprocessor.setdefault('type', self.DEFAULT_PREPROCESSORS[meta.task])
        # The config's types are MMDetection's or MMPretrain's, whatever scope is current.
        scope = self.SCOPES[meta.task]
        with DefaultScope.overwrite_default_scope(scope):
            super().__init__(data_preprocessor=preprocessor)
        self.session = session
        asked = explainer.get('algorithm') if isinstance(explainer, dict) else explainer
        if isinstance(explainer, dict) and set(explainer) - {'algorithm'}:
            raise ExportedModelError(f'{model_file} computes {meta.algorithm} with the options it '
                                     'was exported with; --explainer-options cannot change them')
        if asked is not None and asked != meta.algorithm:
            raise ExportedModelError(f'{model_file} was exported with {meta.algorithm}, not '
                                     f'{asked}; export it again with --explain-algorithm {asked}')
        if SALIENCY_OUTPUT not in meta.outputs:
            raise ExportedModelError(f'{model_file} was exported without {SALIENCY_OUTPUT}')
        self.metadata = meta
        names = meta.class_names or (list(class_names) if class_names else None)
        self.targets = SaliencyTargets(meta.task, meta.num_classes, explain_all_classes,
                                       resolve_classes(target_classes, names),
                                       DEFAULT_SCORE_THR if score_thr is None else score_thr, names)
        with DefaultScope.overwrite_default_scope(scope):
            self.decoder = build_decoder(model_cfg, meta)

    @property
    def algorithm(self) -> str:
        return self.metadata.algorithm

    @property
    def value_range(self) -> Optional[Tuple[float, float]]:
        return self.metadata.value_range

    def forward(self, inputs: Tensor, data_samples: Optional[list] = None,
                mode: str = 'predict') -> Any:
        """``'tensor'``: the named raw outputs; ``'predict'``: explained data samples."""
        outputs = self.run(inputs)
        return outputs if mode == 'tensor' else self.predict(outputs, data_samples)

    def run(self, inputs: Tensor) -> dict:
        """Named outputs (torch tensors) of the exported model on a preprocessed batch."""
        height, width = self.metadata.input_shape
        if inputs.shape[-2] > height or inputs.shape[-1] > width:
            raise ExportedModelError(
                f'the preprocessed input is {tuple(inputs.shape[-2:])}, larger than the '
                f'{(height, width)} the model was exported for; export it with --input-shape')
        pad = (0, width - inputs.shape[-1], 0, height - inputs.shape[-2])
        inputs = F.pad(inputs.float(), pad, value=float(self.data_preprocessor.pad_value))
        outputs = self.session(inputs.cpu().numpy())
        return {name: torch.from_numpy(value) for name, value in outputs.items()}

    def predict(self, outputs: dict, data_samples: List[BaseDataElement]
                ) -> List[BaseDataElement]:
        """Predictions with the saliency maps of the explained classes attached."""
        for sample in data_samples:
            if 'batch_input_shape' in sample.metainfo:
                sample.set_metainfo(dict(batch_input_shape=tuple(self.metadata.input_shape)))
        samples = self.decoder(outputs, data_samples)
        meta = self.metadata
        for sample, maps in zip(samples, outputs[SALIENCY_OUTPUT]):
            classes = self.targets.classes_of(sample) if meta.class_wise else None
            self.targets.attach(sample, maps, classes, meta.algorithm, meta.input_shape,
                                CellGrid(*meta.cell_grid), meta.value_range)
        return samples

    def test_step(self, data: Union[dict, tuple, list]) -> List[BaseDataElement]:
        """Preprocess, run the exported model, decode and attach the maps."""
        data = self.data_preprocessor(data, False)
        return self.predict(self.run(data['inputs']), data['data_samples'])

    def val_step(self, data: Union[dict, tuple, list]) -> List[BaseDataElement]:
        """Same as :meth:`test_step`."""
        return self.test_step(data)
