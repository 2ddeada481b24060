"""Error analysis of a run on an annotated test set.

Which predictions are right (true positives, split by score), which are wrong
(false positives), which objects were missed (false negatives), and where the
class maps look for each: the pointing game and the relevance mass (Arras et
al. 2022, "CLEVR-XAI": the share of a map's sum that lies inside the ground
truth) per class.

Conventions: boxes are (x1, y1, x2, y2) in original-image pixels with x2, y2
exclusive (COCO's ``x + w``); a pixel (column c, row r) lies in a box when its
centre (c + 0.5, r + 0.5) does, edges included, as in
:func:`mmxai.evaluation.pointing_game_hits` with no tolerance.
"""
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from ..boxes import match_detections
from .evaluator import boxes_beside_image
from .functional import peak_points

#: Event kinds, in the order the report lists them.
KINDS = ('tp_high', 'tp_low', 'fp', 'fn')


def error_events(predictions: Dict[str, list], ground_truth: Dict[str, list], score_thr: float,
                 high_score_thr: float) -> List[Dict[str, Any]]:
    """True positives (high / low score), false positives and false negatives of one image.

    Detection: predictions scoring at least ``score_thr`` are matched to the
    ground truth (:func:`match_detections`); a matched one is a true positive,
    an unmatched one a false positive, an unmatched ground-truth box a false
    negative. Classification: a predicted label in the ground truth is a true
    positive, one not in it a false positive, a ground-truth label not
    predicted a false negative (``score_thr`` does not apply: the predicted
    labels are the head's). A true positive is ``tp_high`` when it scores at
    least ``high_score_thr``, else ``tp_low``.

    Args:
        predictions (dict): A manifest entry's ``predictions``.
        ground_truth (dict): Its ``ground_truth``: ``labels`` and, for
            detection (optional for classification), ``bboxes``.
        score_thr (float): Detection: the score of a prediction.
        high_score_thr (float): Score splitting high from low true positives.

    Returns:
        list[dict]: Events with ``kind`` (one of :data:`KINDS`), ``label``,
        ``pred`` (index in the predictions; classification: the label) or
        None, ``gt`` (index in the ground truth) or None, ``score`` (None for
        a false negative) and ``iou`` (detection true positives).
    """
    gt_labels = list(ground_truth.get('labels', []))
    events: List[Dict[str, Any]] = []
    if 'bboxes' in predictions:
        keep = [i for i, score in enumerate(predictions['scores']) if score >= score_thr]
        matched, ious = match_detections([predictions['bboxes'][i] for i in keep],
                                         [predictions['labels'][i] for i in keep],
                                         [predictions['scores'][i] for i in keep],
                                         ground_truth.get('bboxes', []), gt_labels)
        for p, g, iou in zip(keep, matched.tolist(), ious.tolist()):
            score = predictions['scores'][p]
            kind = 'fp' if g < 0 else 'tp_high' if score >= high_score_thr else 'tp_low'
            events.append(dict(kind=kind, label=predictions['labels'][p], pred=p,
                               gt=None if g < 0 else g, score=score,
                               iou=None if g < 0 else iou))
        found = set(matched.tolist())
        events += [dict(kind='fn', label=label, pred=None, gt=g, score=None, iou=None)
                   for g, label in enumerate(gt_labels) if g not in found]
        return events
    scores = predictions.get('scores') or []
    predicted = list(predictions.get('labels') or [])
    for label in predicted:
        score = scores[label] if label < len(scores) else None
        if label in gt_labels:
            high = score is not None and score >= high_score_thr
            events.append(dict(kind='tp_high' if high else 'tp_low', label=label, pred=label,
                               gt=gt_labels.index(label), score=score, iou=None))
        else:
            events.append(dict(kind='fp', label=label, pred=label, gt=None, score=score,
                               iou=None))
    events += [dict(kind='fn', label=label, pred=None, gt=g, score=None, iou=None)
               for g, label in enumerate(gt_labels) if label not in predicted]
    return events


def _box_mask(boxes: Tensor, height: int, width: int) -> Tuple[Tensor, Tuple[int, int, int, int]]:
    """Union of boxes as a bool mask over their bounding rectangle, and that rectangle.

    A pixel is inside when its centre is (edges included). Returns the mask
    and (row0, row1, col0, col1) of the rectangle (exclusive ends).
    """
    boxes = boxes.double()
    cols0 = torch.ceil(boxes[:, 0] - 0.5).clamp(0, width).long()
    cols1 = (torch.floor(boxes[:, 2] - 0.5) + 1).clamp(0, width).long()
    rows0 = torch.ceil(boxes[:, 1] - 0.5).clamp(0, height).long()
    rows1 = (torch.floor(boxes[:, 3] - 0.5) + 1).clamp(0, height).long()
    r0, r1 = int(rows0.min()), int(rows1.max())
    c0, c1 = int(cols0.min()), int(cols1.max())
    mask = torch.zeros(max(r1 - r0, 0), max(c1 - c0, 0), dtype=torch.bool, device=boxes.device)
    for a, b, c, d in zip(rows0.tolist(), rows1.tolist(), cols0.tolist(), cols1.tolist()):
        mask[a - r0:b - r0, c - c0:d - c0] = True
    return mask, (r0, r1, c0, c1)


def relevance_mass(maps: Tensor, boxes: Tensor) -> Tensor:
    """Share of each map's sum inside the union of ``boxes`` (Arras et al.'s relevance mass).

    Args:
        maps (Tensor): (T, H, W) non-negative maps.
        boxes (Tensor): (n, 4) boxes in the maps' pixels.

    Returns:
        Tensor: (T,) float64 in [0, 1]; NaN for a map that sums to 0.
    """
    total = maps.sum((1, 2), dtype=torch.float64)
    if len(boxes) == 0:
        return torch.zeros_like(total)
    mask, (r0, r1, c0, c1) = _box_mask(boxes.to(maps.device), *maps.shape[-2:])
    inside = (maps[:, r0:r1, c0:c1] * mask).sum((1, 2), dtype=torch.float64)
    return torch.where(total > 0, inside / total.clamp_min(1e-300),
                       torch.full_like(total, float('nan')))


def peak_positions(maps: Tensor, within: Optional[Tensor] = None) -> Tensor:
    """Pixel (column, row) of each map's maximum (:func:`mmxai.evaluation.functional.peak_points`).

    Args:
        maps (Tensor): (T, H, W) maps.
        within (Tensor, optional): (H, W) bool, where the maximum is looked for.

    Returns:
        Tensor: (T, 2) long.
    """
    return peak_points(maps, within).floor().long()


def ground_truth_of(sample: Any) -> Optional[Dict[str, list]]:
    """The ground truth of an annotated data sample, as the manifest stores it.

    Detection (``gt_instances``, original pixels: MMDetection's test pipelines
    load annotations after ``Resize``): ``bboxes`` and ``labels``.
    Classification (``gt_label``): ``labels``, with ``bboxes`` (one per label)
    when a box JSON lies beside a single-label image (see
    :func:`mmxai.evaluation.evaluator.boxes_beside_image`).

    Args:
        sample (Any): A data sample after the model's ``test_step``.

    Returns:
        dict | None: None for an unannotated sample (folder mode).
    """
    if 'gt_instances' in sample and 'labels' in sample.gt_instances:
        boxes = sample.gt_instances.bboxes
        boxes = getattr(boxes, 'tensor', boxes)  # mmdet's HorizontalBoxes
        return dict(bboxes=boxes.reshape(-1, 4).tolist(),
                    labels=sample.gt_instances.labels.tolist())
    if 'gt_label' in sample:
        labels = torch.as_tensor(sample.gt_label).reshape(-1).tolist()
        truth: Dict[str, list] = dict(labels=labels)
        boxes = boxes_beside_image(sample.metainfo['img_path']) if len(labels) == 1 else None
        if boxes is not None:
            truth['bboxes'] = boxes.tolist()
        return truth
    return None


def describe_maps(maps: Tensor, classes: Sequence[int], ground_truth: Dict[str, list],
                  within: Optional[Tensor] = None) -> List[Dict[str, Any]]:
    """The numbers of each map the error analysis needs, from the map at original resolution.

    Args:
        maps (Tensor): (T, H, W) maps in [0, 1] at the original resolution.
        classes (Sequence[int]): (T,) class of each map; negative for a
            class-agnostic map.
        ground_truth (dict): What :func:`ground_truth_of` returned.
        within (Tensor, optional): (H, W) bool, where the maximum is looked
            for (:func:`mmxai.models.peak_region_on_original_image`).

    Returns:
        list[dict]: Per map ``peak`` ([column, row] of its maximum) and
        ``relevance_mass``: for each ground-truth class the map is about (its
        own class if present; every present class for a class-agnostic map),
        the share of the map's sum inside that class's ground-truth boxes
        (None for an all-zero map).
    """
    peaks = peak_positions(maps, within).tolist()
    described = [dict(peak=peak, relevance_mass={}) for peak in peaks]
    boxes = torch.as_tensor(ground_truth.get('bboxes', []), dtype=torch.float64).reshape(-1, 4)
    labels = list(ground_truth.get('labels', []))[:len(boxes)]
    by_class: Dict[int, List[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_class[label].append(index)
    for label, indices in sorted(by_class.items()):
        rows = [t for t, c in enumerate(classes) if c == label or c < 0]
        if not rows:
            continue
        mass = relevance_mass(maps[rows], boxes[indices]).tolist()
        for t, value in zip(rows, mass):
            described[t]['relevance_mass'][str(label)] = None if np.isnan(value) else value
    return described


def peak_in_boxes(peak: Sequence[int], boxes: Sequence[Sequence[float]]) -> bool:
    """Whether the centre of pixel ``peak`` (column, row) lies in one of ``boxes``."""
    x, y = peak[0] + 0.5, peak[1] + 0.5
    return any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in boxes)


def class_summary(images: Sequence[Dict[str, Any]], algorithms: Sequence[str],
                  num_classes: int) -> List[Dict[str, Any]]:
    """Per class: event counts, and per algorithm the pointing game and relevance mass.

    Args:
        images (Sequence[dict]): Per image ``ground_truth``, ``events`` (from
            :func:`error_events`) and ``maps``: per algorithm, ``{class: map}``
            with the map's ``peak`` and ``relevance_mass`` (class-agnostic
            maps under class -1).
        algorithms (Sequence[str]): Algorithm names.
        num_classes (int): Number of classes.

    Returns:
        list[dict]: Per class ``class``, ``counts`` (events of each kind, and
        ``images`` with any event of the class) and ``algorithms``: per
        algorithm ``pointing_tp`` / ``pointing_fn`` ([hits, maps]: over images
        with a true positive / false negative of the class, whether the map
        of the class peaks inside one of those ground-truth boxes) and
        ``relevance_mass`` ([sum, maps], the parts of the mean over images
        with the class in the ground truth).
    """
    summary = [dict({'class': label}, counts=dict(dict.fromkeys(KINDS, 0), images=0),
                    algorithms={name: dict(pointing_tp=[0, 0], pointing_fn=[0, 0],
                                           relevance_mass=[0.0, 0]) for name in algorithms})
               for label in range(num_classes)]
    for image in images:
        gt_boxes = image['ground_truth'].get('bboxes', [])
        events_of: Dict[int, List[Dict[str, Any]]] = defaultdict(list)
        for event in image['events']:
            events_of[event['label']].append(event)
        for label in set(events_of) | set(image['ground_truth'].get('labels', [])):
            if not 0 <= label < num_classes:
                continue
            counts, events = summary[label]['counts'], events_of.get(label, [])
            for event in events:
                counts[event['kind']] += 1
            counts['images'] += bool(events)
            boxes_of = {key: [gt_boxes[e['gt']] for e in events if e['kind'] in kinds
                              and e['gt'] is not None and e['gt'] < len(gt_boxes)]
                        for key, kinds in (('pointing_tp', ('tp_high', 'tp_low')),
                                           ('pointing_fn', ('fn',)))}
            for name in algorithms:
                maps = image['maps'].get(name, {})
                found = maps.get(label) or maps.get(-1)
                if found is None:
                    continue
                stats = summary[label]['algorithms'][name]
                for key, boxes in boxes_of.items():
                    if boxes:
                        stats[key][0] += int(peak_in_boxes(found['peak'], boxes))
                        stats[key][1] += 1
                mass = (found.get('relevance_mass') or {}).get(str(label))
                if mass is not None:
                    stats['relevance_mass'][0] += mass
                    stats['relevance_mass'][1] += 1
    return summary
