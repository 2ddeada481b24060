"""Which classes of a prediction are explained, and how maps are attached to it.

Shared by every model that attaches saliency maps to data samples (the
PyTorch :class:`~mmxai.models.ExplainModel` and the exported-model runner of
:mod:`mmxai.deploy`), so that both produce the same samples for the writer.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.structures import BaseDataElement
from torch import Tensor

from ..geometry import CellGrid, cell_span_on_original_image, to_original_image
from ..utils import TargetClassError
from ..utils.defaults import DEFAULT_SCORE_THR

#: Where target boxes come from (see :meth:`SaliencyTargets.boxes_of`).
BOX_SOURCES = ('predictions', 'ground_truth', 'given')


class SaliencyTargets:
    """Target-class selection and attachment of maps to predicted samples.

    Args:
        task (str): ``'detection'`` or ``'classification'``.
        num_classes (int): Classes the model predicts.
        explain_all_classes (bool): Explain every class, not only predicted ones.
        target_classes (Sequence[int], optional): Explain exactly these classes.
        score_thr (float): Detection: explain classes with a box scoring at
            least this. Classification uses the head's predicted label(s).
        class_names (Sequence[str], optional): Class names, for the metainfo.

    Raises:
        TargetClassError: If a target class is out of range.
    """

    def __init__(self, task: str, num_classes: int, explain_all_classes: bool = False,
                 target_classes: Optional[Sequence[int]] = None,
                 score_thr: float = DEFAULT_SCORE_THR,
                 class_names: Optional[Sequence[str]] = None) -> None:
        if target_classes is not None:
            bad = [c for c in target_classes if not 0 <= int(c) < num_classes]
            if bad:
                raise TargetClassError(f'target classes {bad} are out of range: the model has '
                                       f'{num_classes} classes')
        self.task = task
        self.num_classes = num_classes
        self.explain_all_classes = explain_all_classes
        self.target_classes = None if target_classes is None else [int(c) for c in target_classes]
        self.score_thr = score_thr
        self.class_names = None if class_names is None else list(class_names)

    def classes_of(self, sample: BaseDataElement) -> Tensor:
        """Class indices to explain for one predicted sample."""
        if self.target_classes is not None:
            return torch.tensor(self.target_classes, dtype=torch.long)
        if self.explain_all_classes:
            return torch.arange(self.num_classes)
        if self.task == 'detection':
            instances = sample.pred_instances
            return instances.labels[instances.scores >= self.score_thr].unique().long()
        return sample.pred_label.long().reshape(-1)

    def attach(self, sample: BaseDataElement, maps: Tensor, classes: Optional[Tensor],
               algorithm: str, input_shape: Tuple[int, int], grid: CellGrid,
               value_range: Optional[Tuple[float, float]]) -> None:
        """Attach the maps of the explained classes and their metainfo to a sample.

        Args:
            sample (BaseDataElement): A predicted data sample (changed in place).
            maps (Tensor): (K, h, w) maps of every class, or (1, h, w) for a
                class-agnostic method.
            classes (Tensor, optional): Classes to keep; None for class-agnostic maps.
            algorithm (str): The method's name (``--explain-algorithm``).
            input_shape (tuple): (H, W) of the network input the maps cover.
            grid (CellGrid): Where the maps' cells sit on the network input.
            value_range (tuple, optional): The method's fixed value range, if any.
        """
        if classes is not None:
            classes = classes.to(maps.device)
            maps = maps[classes]
            names = [self.class_name(int(c)) for c in classes]
        else:
            classes = torch.full((1,), -1, dtype=torch.long, device=maps.device)
            names = ['']
        sample.saliency_map = maps
        sample.explained_classes = classes
        sample.set_metainfo(dict(explain_algorithm=algorithm,
                                 explain_input_shape=tuple(input_shape),
                                 explain_cell_grid=tuple(grid),
                                 explain_value_range=value_range,
                                 explained_class_names=names))

    def boxes_of(self, sample: BaseDataElement, sources: Sequence[str]
                 ) -> Tuple[Tensor, Tensor, List[Dict[str, Any]]]:
        """The target boxes of one predicted sample, from each source asked for.

        Args:
            sample (BaseDataElement): A predicted detection sample.
            sources (Sequence[str]): ``'predictions'`` (boxes scoring at least
                ``score_thr``), ``'ground_truth'`` (every annotated object,
                ``gt_instances``) and/or ``'given'`` (the ``target_boxes`` of
                its metainfo: ``bbox`` and ``label`` by index or name).

        Returns:
            tuple: (N, 4) boxes in original pixels, (N,) labels and, per box,
            ``source``, ``index`` (in its source's list) and ``bbox``.

        Raises:
            TargetClassError: For a given box of an unknown class.
        """
        boxes, labels, records = [], [], []
        for source in sources:
            if source == 'predictions':
                instances = sample.pred_instances
                kept = torch.nonzero(instances.scores >= self.score_thr)[:, 0]
                found = instances.bboxes[kept], instances.labels[kept], kept.tolist()
            elif source == 'ground_truth':
                if 'gt_instances' not in sample:
                    raise TargetClassError('ground-truth boxes were asked for, but the samples '
                                           'have no annotations (explain the config\'s test set)')
                gt = sample.gt_instances
                found = gt.bboxes, gt.labels, list(range(len(gt.labels)))
            else:
                given = sample.metainfo.get('target_boxes') or []
                names = resolve_classes([box['label'] for box in given], self.class_names)
                bad = [n for n in names if not 0 <= n < self.num_classes]
                if bad:
                    raise TargetClassError(f'target box classes {bad} are out of range: the '
                                           f'model has {self.num_classes} classes')
                found = (torch.tensor([box['bbox'] for box in given], dtype=torch.float32)
                         .reshape(-1, 4), torch.tensor(names, dtype=torch.long),
                         list(range(len(given))))
            bboxes = getattr(found[0], 'tensor', found[0])  # mmdet's HorizontalBoxes
            boxes.append(bboxes.reshape(-1, 4).float().cpu())
            labels.append(found[1].long().cpu())
            records += [dict(source=source, index=index, bbox=box)
                        for index, box in zip(found[2], bboxes.reshape(-1, 4).tolist())]
        if not boxes:
            return torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), []
        return torch.cat(boxes), torch.cat(labels), records

    def class_name(self, index: int) -> str:
        """Name of a class, or its index as text when names are unknown."""
        if self.class_names is not None and 0 <= index < len(self.class_names):
            return str(self.class_names[index])
        return str(index)


def resolve_classes(classes: Optional[Sequence[Union[int, str]]],
                    names: Optional[Sequence[str]]) -> Optional[List[int]]:
    """Class indices from indices or names (``'3'``, ``3`` or ``'dog'``).

    Raises:
        TargetClassError: For a name that is not a class, naming the known classes.
    """
    if classes is None:
        return None
    indices = []
    for item in classes:
        if isinstance(item, int) or str(item).lstrip('-').isdigit():
            indices.append(int(item))
        elif names is not None and item in names:
            indices.append(list(names).index(item))
        else:
            known = ', '.join(map(str, names)) if names else 'none known; use indices'
            raise TargetClassError(f'unknown target class {item!r}; classes: {known}')
    return indices


def maps_on_original_image(maps: Tensor, metainfo: Dict[str, Any],
                           normalize: str = 'per_map') -> Tensor:
    """Maps of a sample :meth:`SaliencyTargets.attach` filled, on its original image.

    Args:
        maps (Tensor): (T, h, w) maps on the sample's grid, e.g. its
            ``saliency_map``, ``box_saliency_map`` or another method's maps
            of the same network input.
        metainfo (dict): The sample's metainfo (the test pipeline's keys and
            the ``explain_*`` keys :meth:`SaliencyTargets.attach` sets).
        normalize (str): As :func:`mmxai.geometry.to_original_image`.

    Returns:
        Tensor: (T, H, W) float maps at the original resolution.
    """
    value_range = metainfo.get('explain_value_range')
    if normalize == 'absolute' and value_range is None:
        raise ValueError(f"{metainfo.get('explain_algorithm', 'these')} maps have no "
                         "absolute scale; use normalize='per_map'")
    return to_original_image(maps, metainfo, metainfo['explain_input_shape'],
                             metainfo['explain_cell_grid'], normalize, value_range)


def peak_region_on_original_image(maps: Tensor, metainfo: Dict[str, Any]) -> Tensor:
    """Where maps on a sample's grid are read for their maximum, on its original image.

    The span of the map's cells (:func:`mmxai.geometry.cell_span`): beyond
    it the maps :func:`maps_on_original_image` returns repeat their outer
    cells, and a peak there would lie outside the cell it belongs to.

    Args:
        maps (Tensor): (T, h, w) maps on the sample's grid (only their shape is read).
        metainfo (dict): As for :func:`maps_on_original_image`.

    Returns:
        Tensor: (H, W) bool at the original resolution, for
        :func:`mmxai.evaluation.peak_points`' ``within``.
    """
    return cell_span_on_original_image(tuple(maps.shape[-2:]), metainfo['explain_cell_grid'],
                                       metainfo, metainfo['explain_input_shape'])
