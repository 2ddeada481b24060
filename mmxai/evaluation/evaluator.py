"""Score explain algorithms and baselines on an annotated test set."""
import json
import os.path as osp
import zlib
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..adapters import build_adapter
from ..explainers import explainer_for
from ..geometry import (
    PIXELS,
    CellGrid,
    cell_span_on_original_image,
    normalize_per_map,
    resample_cells,
    to_original_image,
)
from .functional import adcc, centre_blob_maps, insertion_deletion, pointing_game_hits, random_maps

BASELINES = ('random', 'centre_blob')
METRICS = ('pointing_game', 'insertion_auc', 'deletion_auc', 'avg_drop', 'coherency',
           'complexity', 'adcc')


def split_by_padded_shape(data: dict, pad_size_divisor: int = 1) -> List[dict]:
    """Split a collated test batch into batches whose images pad to one shape.

    The data preprocessor pads a batch to its largest image (rounded up to
    ``pad_size_divisor``), and a model's outputs depend on that padding
    (global pooling, GroupNorm, FPN upsampling). Images that pad to the same
    shape alone get exactly the input they would get alone when batched
    together, so grouping them keeps the model calls batched while the
    metrics do not depend on the batch size.

    Args:
        data (dict): A batch from a test dataloader (``inputs``: a list of
            (C, H, W) tensors, or one stacked tensor; ``data_samples``).
        pad_size_divisor (int): The preprocessor's ``pad_size_divisor``.

    Returns:
        list[dict]: Batches in order of each shape's first image; the batch
        itself when all its inputs pad to one shape.
    """
    inputs = data['inputs']
    if isinstance(inputs, Tensor):  # already stacked: one shape
        return [data]
    divisor = max(1, int(pad_size_divisor))
    groups: Dict[tuple, List[int]] = defaultdict(list)
    for index, image in enumerate(inputs):
        padded = tuple(-(-size // divisor) * divisor for size in image.shape[-2:])
        groups[padded].append(index)
    if len(groups) == 1:
        return [data]
    return [{key: [value[i] for i in indices]
             if isinstance(value, (list, tuple)) and len(value) == len(inputs) else value
             for key, value in data.items()} for indices in groups.values()]


def boxes_beside_image(img_path: str) -> Optional[Tensor]:
    """The object box of a classification image from ``<image stem>.json``.

    The JSON holds ``bbox`` (x1, y1, x2, y2) in original pixels, as
    :func:`mmxai.datasets.make_classification_split` writes it.
    """
    path = osp.splitext(img_path)[0] + '.json'
    if not osp.isfile(path):
        return None
    with open(path) as file:
        return torch.tensor([json.load(file)['bbox']], dtype=torch.float32)


def label_boxes_beside_image(img_path: str) -> Dict[int, Tensor]:
    """The (n, 4) object boxes of each label of a classification image.

    From ``<image stem>.json``: a multi-label image's ``labels`` with one
    ``bboxes`` entry each, as :func:`mmxai.datasets.make_multilabel_split`
    writes them, or a single-label image's ``bbox`` (see
    :func:`boxes_beside_image`), keyed -1: whatever its label. Empty without
    a JSON.
    """
    path = osp.splitext(img_path)[0] + '.json'
    if not osp.isfile(path):
        return {}
    with open(path) as file:
        info = json.load(file)
    if 'bboxes' not in info:
        return {-1: torch.tensor([info['bbox']], dtype=torch.float32)}
    boxes: Dict[int, List[list]] = defaultdict(list)
    for label, box in zip(info['labels'], info['bboxes']):
        boxes[int(label)].append(box)
    return {label: torch.tensor(value, dtype=torch.float32) for label, value in boxes.items()}


class ExplanationEvaluator:
    """Pointing game, insertion/deletion and ADCC of explainers and baselines.

    One captured forward pass per batch serves every algorithm. Targets are
    the annotated classes: a classification image's ground-truth label (each
    of them for a multi-label image, each scored against its own object's
    box), and every class present in a detection image's ground truth (maps of predicted
    classes absent from the ground truth are not scored). Metrics read maps in
    one value space, per-map min-max normalised to [0, 1]: the pointing game
    on the original image (as ``--save-raw`` writes maps, the maximum read
    within the span of the map's cells, :func:`mmxai.geometry.cell_span`), the model-based
    metrics on each image's own region of the network input (its
    ``img_shape``: padding is never counted, painted or correlated), with
    the images of a batch grouped by the shape they pad to, so that each is
    padded as it would be alone (:func:`split_by_padded_shape`): the metrics
    do not depend on the batch size. Ground-truth boxes are in original pixels (MMDetection's
    test pipelines load annotations after ``Resize``; classification boxes
    come from a JSON beside each image). Insertion starts from a strongly
    blurred (or black) image (each image blurred on its own, with a kernel
    from its own size), deletion paints black; the detection score of a target is the
    highest score of a predicted box of its class overlapping one of its
    ground-truth boxes with IoU >= 0.5 (0 if none).

    Args:
        model (nn.Module): The detector or classifier (loaded, eval mode).
        algorithms (Sequence[str]): ``--explain-algorithm`` names.
        steps (int): Insertion/deletion steps.
        tolerance (float): Pointing-game tolerance in pixels.
        seed (int): Seed of the random baseline (each target's map is drawn
            from this seed, its image path and class, so it does not depend
            on its batch).
        insertion_canvas (str): ``'blur'`` (RISE; a strong blur, see
            :meth:`_insertion_canvas`) or ``'black'``.
    """

    def __init__(self, model: nn.Module, algorithms: Sequence[str], steps: int = 16,
                 tolerance: float = 0.0, seed: int = 0,
                 insertion_canvas: str = 'blur') -> None:
        if insertion_canvas not in ('blur', 'black'):
            raise ValueError(f"insertion_canvas must be 'blur' or 'black', "
                             f'got {insertion_canvas!r}')
        self.model = model
        self.adapter = build_adapter(model)
        self.explainers = {name: explainer_for(name, self.adapter) for name in algorithms}
        self.steps = steps
        self.tolerance = tolerance
        self.seed = seed
        self.insertion_canvas = insertion_canvas
        self.values: Dict[str, Dict[str, List[float]]] = defaultdict(lambda: defaultdict(list))

    # ----------------------------------------------------------------- targets
    def _targets(self, samples: list) -> List[tuple]:
        targets = []
        for index, sample in enumerate(samples):
            if 'gt_instances' in sample:
                labels, boxes = sample.gt_instances.labels, sample.gt_instances.bboxes
                for label in labels.unique().tolist():
                    targets.append((index, label, boxes[labels == label].float().cpu()))
            else:  # every ground-truth label (several for a multi-label image)
                boxes = label_boxes_beside_image(sample.metainfo['img_path'])
                for label in sample.gt_label.unique().tolist():
                    targets.append((index, label, boxes.get(label, boxes.get(-1))))
        return targets

    # ------------------------------------------------------------------ scores
    def _scores(self, inputs: Tensor, samples: list, targets: List[tuple]) -> Tensor:
        """Class scores of each target's (modified) input, one batch."""
        classes = torch.tensor([t[1] for t in targets], device=inputs.device)
        if self.adapter.task == 'classification':
            probs = self.adapter.probabilities_of_inputs(inputs)
            return probs.gather(1, classes[:, None])[:, 0]
        from mmdet.structures.bbox import bbox_overlaps
        predictions = self.model.predict(inputs, [samples[t[0]].clone() for t in targets])
        scores = []
        for prediction, (_, label, boxes) in zip(predictions, targets):
            instances = prediction.pred_instances
            keep = instances.labels == label
            if not keep.any() or boxes is None or len(boxes) == 0:
                scores.append(inputs.new_zeros(()))
                continue
            iou = bbox_overlaps(instances.bboxes[keep], boxes.to(inputs.device)).amax(1)
            matched = instances.scores[keep][iou >= 0.5]
            scores.append(matched.max() if len(matched) else inputs.new_zeros(()))
        return torch.stack(scores)

    # -------------------------------------------------------------------- maps
    def _input_maps(self, raw: Tensor, grid: CellGrid, samples: list, targets: List[tuple],
                    input_shape: tuple) -> Tensor:
        """(T, H, W) [0, 1] maps over the padded input, 0 outside the image."""
        maps = resample_cells(raw[:, None], input_shape, grid)[:, 0]
        out = torch.zeros_like(maps)
        for row, (index, _, _) in enumerate(targets):
            img_h, img_w = samples[index].metainfo['img_shape'][:2]
            out[row, :img_h, :img_w] = normalize_per_map(maps[row:row + 1, :img_h, :img_w])[0]
        return out

    def _explain(self, name: str, inputs: Tensor, samples: list, targets: List[tuple],
                 replicate: bool) -> Tuple[Tensor, Tuple[Tuple[int, int], CellGrid]]:
        """An algorithm's maps of the targets over the input, and their cells.

        Returns (T, H, W) [0, 1] maps and the (h, w) shape and grid of the
        cells they were resampled from, between which their maximum is read
        (:func:`mmxai.geometry.cell_span_on_original_image`).
        """
        if replicate:  # inputs are one row per target: run the model on them
            with self.adapter.capture():
                predicted = self.model.predict(inputs, [samples[t[0]].clone() for t in targets])
            rows = torch.arange(len(targets))
            classes_to_keep = [torch.tensor([max(t[1], 0)]) for t in targets]
        else:
            predicted = samples
            rows = torch.tensor([t[0] for t in targets])
            classes_to_keep = [torch.tensor(sorted({max(t[1], 0) for t in targets
                                                    if t[0] == index}), dtype=torch.long)
                               for index in range(len(samples))]
        # Predictions (D-RISE's target boxes) and the classes scored (gradient and
        # mask methods compute only those).
        maps = self.explainers[name](self.adapter, predicted, classes_to_keep)
        classes = torch.tensor([max(t[1], 0) if maps.shape[1] > 1 else 0 for t in targets])
        grid = self.explainers[name].map_grid(self.adapter, tuple(maps.shape[-2:]))
        return self._input_maps(maps[rows.to(maps.device), classes.to(maps.device)], grid,
                                samples, targets, tuple(inputs.shape[-2:])), \
            (tuple(maps.shape[-2:]), grid)

    def _baseline(self, name: str, samples: list, targets: List[tuple],
                  input_shape: tuple, device: torch.device) -> Tensor:
        maps = torch.zeros(len(targets), *input_shape, device=device)
        for row, (index, label, _) in enumerate(targets):
            img_h, img_w = samples[index].metainfo['img_shape'][:2]
            shape = (1, img_h, img_w)
            key = f"{samples[index].metainfo.get('img_path', '')}#{label}"
            blob = random_maps(shape, seed=self.seed + zlib.crc32(key.encode())) \
                if name == 'random' else centre_blob_maps(shape)
            maps[row, :img_h, :img_w] = blob[0].to(device)
        return maps

    @staticmethod
    def _image_shapes(samples: list, targets: List[tuple]) -> List[tuple]:
        return [tuple(samples[index].metainfo['img_shape'][:2]) for index, _, _ in targets]

    def _valid(self, samples: list, targets: List[tuple], input_shape: tuple,
               device: torch.device) -> Tensor:
        """(T, H, W) bool: each target's image region of the (padded) input."""
        valid = torch.zeros(len(targets), *input_shape, dtype=torch.bool, device=device)
        for row, (img_h, img_w) in enumerate(self._image_shapes(samples, targets)):
            valid[row, :img_h, :img_w] = True
        return valid

    def _insertion_canvas(self, pixels: Tensor, samples: list, targets: List[tuple]) -> Tensor:
        if self.insertion_canvas == 'black':
            return torch.zeros_like(pixels)
        # Two box blurs of a quarter of the image's shorter side: a strong blur,
        # so that small objects are no longer recognisable on the canvas. Each
        # image is blurred inside its own region (its borders replicated, not
        # the padding's), one blur per image size.
        canvas = pixels.clone()
        shapes = self._image_shapes(samples, targets)
        for img_h, img_w in dict.fromkeys(shapes):
            rows = [row for row, shape in enumerate(shapes) if shape == (img_h, img_w)]
            size = max(3, min(img_h, img_w) // 4) | 1
            region = pixels[rows, :, :img_h, :img_w]
            for _ in range(2):
                region = F.avg_pool2d(F.pad(region, [size // 2] * 4, mode='replicate'), size,
                                      stride=1)
            canvas[rows, :, :img_h, :img_w] = region
        return canvas

    # ----------------------------------------------------------------- process
    @torch.no_grad()
    def process(self, data: dict) -> None:
        """Score every algorithm and baseline on one batch of the test loader.

        The batch is scored one padded shape at a time
        (:func:`split_by_padded_shape`), each shape's images together.
        """
        divisor = getattr(self.model.data_preprocessor, 'pad_size_divisor', 1)
        for batch in split_by_padded_shape(data, divisor):
            self._process_batch(batch)

    def _process_batch(self, data: dict) -> None:
        with self.adapter.capture():
            samples = self.model.test_step(data)
        targets = self._targets(samples)
        if not targets:
            return
        inputs = self.adapter.captured('backbone_input')
        rows = torch.tensor([t[0] for t in targets], device=inputs.device)
        images = inputs[rows]
        preprocessor = self.model.data_preprocessor
        mean, std = preprocessor.mean, preprocessor.std
        pixels = images * std + mean
        insertion_canvas = self._insertion_canvas(pixels, samples, targets)
        input_shape = tuple(inputs.shape[-2:])
        valid = self._valid(samples, targets, input_shape, inputs.device)

        def score(pixel_images: Tensor) -> Tensor:
            return self._scores((pixel_images - mean) / std, samples, targets)

        p_image = score(pixels)
        methods = {name: self._explain(name, inputs, samples, targets, replicate=False)
                   for name in self.explainers}
        methods.update({name: (self._baseline(name, samples, targets, input_shape, inputs.device),
                               None) for name in BASELINES})
        for name, (maps, cells) in methods.items():
            values = self.values[name]
            for row, (index, _, boxes) in enumerate(targets):
                if boxes is None:
                    continue
                metainfo = samples[index].metainfo
                original = to_original_image(maps[row:row + 1], metainfo, input_shape, PIXELS)
                region = None if cells is None else cell_span_on_original_image(
                    *cells, metainfo, input_shape)
                values['pointing_game'].append(
                    float(pointing_game_hits(original, [boxes], self.tolerance, region)[0]))
            curves = insertion_deletion(score, pixels, maps, insertion_canvas,
                                        torch.zeros_like(pixels), self.steps, valid)
            explanation = torch.where(valid[:, None], pixels * maps[:, None], pixels)
            if name in BASELINES:  # image-independent: the same map for any input
                maps_of_explanation = maps
            else:
                maps_of_explanation = self._explain(name, (explanation - mean) / std, samples,
                                                    targets, replicate=True)[0]
            parts = adcc(p_image, score(explanation), maps, maps_of_explanation, valid)
            for key in ('insertion_auc', 'deletion_auc'):
                values[key] += curves[key].tolist()
            for key in ('avg_drop', 'coherency', 'complexity', 'adcc'):
                values[key] += parts[key].tolist()

    def summary(self) -> Dict[str, Dict[str, float]]:
        """Mean of every metric per method (algorithms, then baselines)."""
        return {name: {key: sum(v) / len(v) for key, v in self.values[name].items() if v}
                for name in [*self.explainers, *BASELINES] if name in self.values}


def format_table(summary: Dict[str, Dict[str, float]]) -> str:
    """A plain-text table of :meth:`ExplanationEvaluator.summary`."""
    header = f'{"method":<22}' + ''.join(f'{key:>15}' for key in METRICS)
    lines = [header, '-' * len(header)]
    for name, values in summary.items():
        lines.append(f'{name:<22}' + ''.join(
            f'{values[key]:>15.3f}' if key in values else f'{"-":>15}' for key in METRICS))
    return '\n'.join(lines)
