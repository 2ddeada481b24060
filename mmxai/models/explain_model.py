"""The explain-mode wrapper around a detector or classifier."""
from typing import Any, List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModel
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from ..adapters import build_adapter
from ..explainers import BaseExplainer, build_explainer
from ..registry import MODELS
from ..utils import TargetClassError


@MODELS.register_module()
class ExplainModel(BaseModel):
    """Predicts as the wrapped model does and attaches saliency maps.

    The wrapped model runs once; its feature maps and head outputs are
    captured on the way (see :mod:`mmxai.adapters`) and the explainer
    turns them into maps. Each returned data sample gains:

    * ``saliency_map``: float (T, h, w) maps in network-input coordinates, one
      per explained class (T = 1 for class-agnostic methods);
    * ``explained_classes``: long (T,) class indices, -1 for class-agnostic;
    * metainfo ``explain_algorithm``, ``explain_input_shape``,
      ``explain_cell_grid`` (where the map cells sit on the input, see
      :class:`mmxai.geometry.CellGrid`), ``explain_value_range`` (the
      method's fixed value range, or None) and ``explained_class_names``.

    Install it around an already loaded model (see
    :class:`mmxai.engine.hooks.PrepareExplainHook`): built from a config, it
    would prefix every checkpoint key with ``module.``.

    Args:
        module (nn.Module | dict): The detector or classifier.
        explainer (str | dict | BaseExplainer): Algorithm name
            (``classwisesaliencymap``, ``activationmap``, ``eigencam``), an
            explainer config, or an explainer.
        explain_all_classes (bool): Explain every class, not only predicted ones.
        target_classes (Sequence[int], optional): Explain exactly these classes.
        score_thr (float, optional): Detection: explain classes with a box
            scoring at least this; the same value reaches the explainers that
            use a score threshold themselves (see
            :func:`mmxai.explainers.build_explainer`). None: the explainer's
            own ``score_thr`` if it has one, else 0.3. Classification uses the
            head's predicted label(s).
        class_names (Sequence[str], optional): Class names, for the metainfo.
    """

    def __init__(self,
                 module: Union[nn.Module, dict],
                 explainer: Union[str, dict, BaseExplainer] = 'classwisesaliencymap',
                 explain_all_classes: bool = False,
                 target_classes: Optional[Sequence[int]] = None,
                 score_thr: Optional[float] = None,
                 class_names: Optional[Sequence[str]] = None) -> None:
        if isinstance(module, dict):
            module = MMENGINE_MODELS.build(module)
        super().__init__(data_preprocessor=module.data_preprocessor)
        self.module = module
        self.adapter = build_adapter(module)
        self.explainer = build_explainer(explainer, self.adapter.family, score_thr)
        self.explainer.check_supported(self.adapter)
        num_classes = self.adapter.num_classes
        if target_classes is not None:
            bad = [c for c in target_classes if not 0 <= int(c) < num_classes]
            if bad:
                raise TargetClassError(f'target classes {bad} are out of range: the model has '
                                 f'{num_classes} classes')
        self.explain_all_classes = explain_all_classes
        self.target_classes = None if target_classes is None else [int(c) for c in target_classes]
        self.score_thr = score_thr if score_thr is not None else \
            getattr(self.explainer, 'score_thr', 0.3)
        self.class_names = None if class_names is None else list(class_names)

    def forward(self, inputs: Tensor, data_samples: Optional[list] = None,
                mode: str = 'tensor') -> Any:
        """Delegates to the wrapped model."""
        return self.module(inputs, data_samples, mode)

    def test_step(self, data: Union[dict, tuple, list]) -> List[BaseDataElement]:
        """Predict with the wrapped model and attach saliency maps."""
        with self.adapter.capture():
            samples = self.module.test_step(data)
        targets = [self.explained_classes(sample) for sample in samples] \
            if self.explainer.class_wise else None
        maps = self.explainer(self.adapter, samples, targets)
        input_shape = self.adapter.input_shape
        for index, (sample, sample_maps) in enumerate(zip(samples, maps)):
            self._attach(sample, sample_maps, input_shape, targets[index] if targets else None)
        return samples

    def val_step(self, data: Union[dict, tuple, list]) -> List[BaseDataElement]:
        """Same as :meth:`test_step`."""
        return self.test_step(data)

    def explained_classes(self, sample: BaseDataElement) -> Tensor:
        """Class indices to explain for one predicted sample."""
        if self.target_classes is not None:
            return torch.tensor(self.target_classes, dtype=torch.long)
        if self.explain_all_classes:
            return torch.arange(self.adapter.num_classes)
        if self.adapter.task == 'detection':
            instances = sample.pred_instances
            return instances.labels[instances.scores >= self.score_thr].unique().long()
        return sample.pred_label.long().reshape(-1)

    def _attach(self, sample: BaseDataElement, maps: Tensor, input_shape: tuple,
                classes: Optional[Tensor]) -> None:
        if classes is not None:
            classes = classes.to(maps.device)
            maps = maps[classes]
            names = [self.class_name(int(c)) for c in classes]
        else:
            classes = torch.full((1,), -1, dtype=torch.long, device=maps.device)
            names = ['']
        sample.saliency_map = maps
        sample.explained_classes = classes
        grid = self.explainer.map_grid(self.adapter, tuple(maps.shape[-2:]))
        sample.set_metainfo(dict(explain_algorithm=self.explainer.algorithm,
                                 explain_input_shape=input_shape,
                                 explain_cell_grid=tuple(grid),
                                 explain_value_range=self.explainer.value_range,
                                 explained_class_names=names))

    def class_name(self, index: int) -> str:
        """Name of a class, or its index as text when names are unknown."""
        if self.class_names is not None and 0 <= index < len(self.class_names):
            return str(self.class_names[index])
        return str(index)


