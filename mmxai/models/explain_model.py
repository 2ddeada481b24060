"""The explain-mode wrapper around a detector or classifier."""
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.model import BaseModel
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from ..adapters import build_adapter
from ..adapters.dense_heads import check_head_predicts
from ..boxes import fill_boxes_from_masks, match_detections
from ..explainers import BaseExplainer, explainer_for
from ..geometry import boxes_to_input, cells_inside
from ..registry import MODELS
from ..utils.defaults import DEFAULT_SCORE_THR
from ..utils.errors import UnsupportedModelError
from .saliency_model import SaliencyModel
from .saliency_targets import BOX_SOURCES, SaliencyTargets

#: How MMCV says that a compiled op has no kernel for a device.
_NO_KERNEL = 'implementation for device'


@contextmanager
def refusing_missing_kernels(model: nn.Module) -> Iterator[None]:
    """Turn MMCV's "no kernel for this device" error into a one-line refusal.

    Some MMCV ops (CARAFE, deformable RoI pooling, ...) are compiled for CUDA
    only; a model that uses them cannot predict on the CPU at all.
    """
    try:
        yield
    except RuntimeError as error:
        if _NO_KERNEL not in str(error):
            raise
        raise UnsupportedModelError(
            f'{type(model).__name__} cannot predict on this device: an MMCV op it uses has no '
            f'kernel for it ({str(error).strip().splitlines()[0]}); run it on a GPU') from error


@MODELS.register_module()
class ExplainModel(BaseModel, SaliencyModel):
    """Predicts as the wrapped model does and attaches saliency maps.

    The wrapped model runs once; its feature maps and head outputs are
    captured on the way (see :mod:`mmxai.adapters`) and the explainer
    turns them into maps. Each returned data sample gains:

    * ``saliency_map``: float (T, h, w) maps in network-input coordinates, one
      per explained class (T = 1 for class-agnostic methods);
    * ``explained_classes``: long (T,) class indices, -1 for class-agnostic;
    * with ``box_targets`` (detectors): ``box_saliency_map`` (N, h, w), one
      map per target box (see :meth:`BaseExplainer.explain_boxes`), and
      metainfo ``explained_boxes``: per box its ``source``, ``index``,
      ``bbox`` (original pixels), ``label``, ``class_name``, ``evidence``
      (the largest value of its map), for probability maps ``in_box`` (the
      largest value of its class map inside it) and, for boxes that are not
      predictions, ``match`` (the prediction of its class that overlaps it
      most: ``prediction`` index, ``iou``, ``score``; None if none does) and
      ``detected`` (the COCO-style match of :func:`mmxai.boxes.match_detections`
      pairs it with a prediction of its class scoring at least ``score_thr``);
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
        class_names (Sequence[str], optional): Class names, for the metainfo
            (None: the model's ``dataset_meta`` classes, if it has them).
        box_targets (Sequence[str]): Detectors: also explain boxes, from
            ``'predictions'`` (those scoring at least ``score_thr``: per-box
            maps), ``'ground_truth'`` (every annotated object, matched or
            missed) and ``'given'`` (``target_boxes`` in the metainfo).
    """

    def __init__(self,
                 module: Union[nn.Module, dict],
                 explainer: Union[str, dict, BaseExplainer] = 'classwisesaliencymap',
                 explain_all_classes: bool = False,
                 target_classes: Optional[Sequence[int]] = None,
                 score_thr: Optional[float] = None,
                 class_names: Optional[Sequence[str]] = None,
                 box_targets: Sequence[str] = ()) -> None:
        if isinstance(module, dict):
            module = MMENGINE_MODELS.build(module)
        super().__init__(data_preprocessor=module.data_preprocessor)
        self.module = module
        self.adapter = build_adapter(module)
        check_head_predicts(getattr(self.adapter.model, 'bbox_head', None),
                            type(self.adapter.model).__name__)
        self.explainer = explainer_for(explainer, self.adapter, score_thr)
        if score_thr is None:
            score_thr = getattr(self.explainer, 'score_thr', DEFAULT_SCORE_THR)
        if class_names is None:
            class_names = (getattr(module, 'dataset_meta', None) or {}).get('classes')
        self.targets = SaliencyTargets(self.adapter.task, self.adapter.num_classes,
                                       explain_all_classes, target_classes, score_thr, class_names)
        unknown = set(box_targets) - set(BOX_SOURCES)
        if unknown:
            raise ValueError(f'unknown box targets {sorted(unknown)}; choose from {BOX_SOURCES}')
        if box_targets and self.adapter.task != 'detection':
            raise UnsupportedModelError('box explanations are for detectors; '
                                        f'{type(module).__name__} is a classifier')
        if box_targets:
            self.explainer.check_box_maps_supported(self.adapter)
        self.box_targets = tuple(box_targets)
        self._one_image_per_batch: Optional[bool] = None

    def forward(self, inputs: Tensor, data_samples: Optional[list] = None,
                mode: str = 'tensor') -> Any:
        """Delegates to the wrapped model."""
        return self.module(inputs, data_samples, mode)

    def test_step(self, data: Union[dict, tuple, list]) -> List[BaseDataElement]:
        """Predict with the wrapped model and attach saliency maps."""
        self._check_batch_size(data)
        with self.adapter.capture(), refusing_missing_kernels(self.module):
            samples = self.module.test_step(data)
        if self.adapter.task == 'detection' and any('pred_instances' not in s for s in samples):
            fields = sorted(key for key in samples[0].keys() if key.startswith('pred_'))
            raise UnsupportedModelError(
                f'{type(self.module).__name__} predicts {", ".join(fields) or "nothing"}, not '
                'instances (pred_instances); mmxai explains detections and instance masks')
        for sample in samples:
            if 'pred_instances' in sample:
                fill_boxes_from_masks(sample.pred_instances)
        targets = [self.explained_classes(sample) for sample in samples] \
            if self.explainer.class_wise else None
        maps = self.explainer(self.adapter, samples, targets)
        if not bool(maps.isfinite().all()):  # never draw NaN or inf as a picture
            raise UnsupportedModelError(
                f'the {self.explainer.algorithm} maps of {type(self.module).__name__} are not '
                'finite: what the model computed for this input holds NaN or inf (overflowing '
                'weights)')
        input_shape = self.adapter.input_shape
        if self.box_targets:
            self._explain_boxes(samples, maps)
        for index, (sample, sample_maps) in enumerate(zip(samples, maps)):
            self._attach(sample, sample_maps, input_shape, targets[index] if targets else None)
        return samples

    def _check_batch_size(self, data: Union[dict, tuple, list]) -> None:
        """Refuse batches the model cannot predict: MMCV's MaskedConv2d takes one image."""
        inputs = data.get('inputs') if isinstance(data, dict) else None
        if inputs is None or len(inputs) <= 1:
            return
        if self._one_image_per_batch is None:
            from mmcv.ops import MaskedConv2d
            self._one_image_per_batch = any(isinstance(module, MaskedConv2d)
                                            for module in self.module.modules())
        if self._one_image_per_batch:
            raise UnsupportedModelError(
                f'{type(self.module).__name__} predicts one image per batch (MMCV\'s '
                f'MaskedConv2d); explain with batch size 1, not {len(inputs)}')

    def val_step(self, data: Union[dict, tuple, list]) -> List[BaseDataElement]:
        """Same as :meth:`test_step`."""
        return self.test_step(data)

    def explained_classes(self, sample: BaseDataElement) -> Tensor:
        """Class indices to explain for one predicted sample."""
        return self.targets.classes_of(sample)

    def _attach(self, sample: BaseDataElement, maps: Tensor, input_shape: tuple,
                classes: Optional[Tensor]) -> None:
        grid = self.explainer.map_grid(self.adapter, tuple(maps.shape[-2:]))
        self.targets.attach(sample, maps, classes, self.explainer.algorithm, input_shape, grid,
                            self.explainer.value_range)

    def _explain_boxes(self, samples: List[BaseDataElement], class_maps: Tensor) -> None:
        from mmdet.structures.bbox import bbox_overlaps
        found = [self.targets.boxes_of(sample, self.box_targets) for sample in samples]
        for boxes, _, records in found:
            # A box at inf, or without area, overlaps nothing: its map would be all 0.
            broken = [f'{r["source"]} {r["index"]}' for r, box in zip(records, boxes)
                      if not bool(box.isfinite().all()) or box[2] <= box[0] or box[3] <= box[1]]
            if broken:  # never draw a box map of 0 for a box that has no place on the image
                raise UnsupportedModelError(
                    f'{len(broken)} box(es) to explain of {type(self.module).__name__} are not '
                    f'finite or have no area ({", ".join(broken[:3])}): what the model computed '
                    'for this input overflows (untrained or broken weights), or a given box is '
                    'empty')
        device = class_maps.device
        input_boxes = [boxes_to_input(boxes, s.metainfo) for (boxes, _, _), s in
                       zip(found, samples)]
        box_maps = self.explainer.explain_boxes(
            self.adapter, samples, [boxes.to(device) for boxes in input_boxes],
            [labels.to(device) for _, labels, _ in found])
        grid = self.explainer.map_grid(self.adapter, tuple(class_maps.shape[-2:]))
        for sample, (boxes, labels, records), on_input, maps, image_maps in zip(
                samples, found, input_boxes, box_maps, class_maps):
            predictions = sample.pred_instances
            overlaps = bbox_overlaps(boxes, predictions.bboxes.float().cpu()) * \
                (labels[:, None] == predictions.labels.cpu()[None])  # (N, P), same class only
            scores = predictions.scores.cpu()
            # Per box, in one device call each: its map's peak and its class map's peak
            # on the cells inside it (N, h, w).
            evidence = maps.flatten(1).amax(1).tolist()
            if self.explainer.value_range is not None:
                inside = cells_inside(on_input, grid, tuple(image_maps.shape[-2:])).to(device)
                in_box = image_maps[labels.to(device)].masked_fill(~inside, float('-inf')) \
                    .flatten(1).amax(1).tolist()
            detected = self._detected(boxes, labels, records, predictions)
            for row, record in enumerate(records):
                label = int(labels[row])
                record.update(label=label, class_name=self.targets.class_name(label),
                              evidence=evidence[row])
                if self.explainer.value_range is not None:
                    record['in_box'] = in_box[row]
                if record['source'] != 'predictions':
                    best = int(overlaps[row].argmax()) if overlaps.shape[1] else -1
                    record['match'] = None if best < 0 or overlaps[row, best] <= 0 else dict(
                        prediction=best, iou=float(overlaps[row, best]),
                        score=float(scores[best]))
                    record['detected'] = bool(detected[row])
            sample.box_saliency_map = maps
            sample.set_metainfo(dict(explained_boxes=records))

    def _detected(self, boxes: Tensor, labels: Tensor, records: List[dict],
                  predictions: Any) -> np.ndarray:
        """Per target box, whether it is detected: :func:`mmxai.boxes.match_detections`.

        The COCO-style match pairs it with a prediction of its class scoring at
        least the threshold. Each source is matched on its own: one prediction
        detects one ground-truth box and one given box at most.
        """
        detected = np.zeros(len(records), bool)
        kept = predictions.scores >= self.score_thr
        pred_boxes, pred_labels = predictions.bboxes[kept].cpu(), predictions.labels[kept].cpu()
        pred_scores = predictions.scores[kept].cpu()
        for source in {r['source'] for r in records} - {'predictions'}:
            rows = [i for i, r in enumerate(records) if r['source'] == source]
            matched, _ = match_detections(pred_boxes.numpy(), pred_labels.numpy(),
                                          pred_scores.numpy(), boxes[rows].numpy(),
                                          labels[rows].numpy())
            detected[[rows[g] for g in matched[matched >= 0]]] = True
        return detected

    @property
    def algorithm(self) -> str:
        return self.explainer.algorithm

    @property
    def value_range(self) -> Optional[Tuple[float, float]]:
        return self.explainer.value_range
