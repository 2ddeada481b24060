"""Score explain algorithms and baselines on an annotated test set."""
import json
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..adapters import build_adapter
from ..explainers import build_explainer
from ..geometry import PIXELS, CellGrid, normalize_per_map, resample_cells, to_original_image
from .functional import adcc, centre_blob_maps, insertion_deletion, pointing_game_hits, random_maps

BASELINES = ('random', 'centre_blob')
METRICS = ('pointing_game', 'insertion_auc', 'deletion_auc', 'avg_drop', 'coherency',
           'complexity', 'adcc')


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


class ExplanationEvaluator:
    """Pointing game, insertion/deletion and ADCC of explainers and baselines.

    One captured forward pass per batch serves every algorithm. Targets are
    the annotated classes: a classification image's ground-truth label, and
    every class present in a detection image's ground truth (maps of predicted
    classes absent from the ground truth are not scored). Metrics read maps in
    one value space, per-map min-max normalised to [0, 1]: the pointing game
    on the original image (as ``--save-raw`` writes maps), the model-based
    metrics on the network input (pixels outside the image, i.e. padding, are
    ranked last). Ground-truth boxes are in original pixels (MMDetection's
    test pipelines load annotations after ``Resize``; classification boxes
    come from a JSON beside each image). Insertion starts from a strongly
    blurred (or black) image, deletion paints black; the detection score of a target is the
    highest score of a predicted box of its class overlapping one of its
    ground-truth boxes with IoU >= 0.5 (0 if none).

    Args:
        model (nn.Module): The detector or classifier (loaded, eval mode).
        algorithms (Sequence[str]): ``--explain-algorithm`` names.
        steps (int): Insertion/deletion steps.
        tolerance (float): Pointing-game tolerance in pixels.
        seed (int): Seed of the random baseline.
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
        self.explainers = {name: build_explainer(name, self.adapter.family)
                           for name in algorithms}
        for explainer in self.explainers.values():
            explainer.check_supported(self.adapter)
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
            else:
                boxes = boxes_beside_image(sample.metainfo['img_path'])
                targets.append((index, int(sample.gt_label[0]), boxes))
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
                 replicate: bool) -> Tensor:
        """(T, H, W) [0, 1] maps of an algorithm for the targets over the input."""
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
                                samples, targets, tuple(inputs.shape[-2:]))

    def _baseline(self, name: str, samples: list, targets: List[tuple],
                  input_shape: tuple, device: torch.device) -> Tensor:
        maps = torch.zeros(len(targets), *input_shape, device=device)
        for row, (index, _, _) in enumerate(targets):
            img_h, img_w = samples[index].metainfo['img_shape'][:2]
            shape = (1, img_h, img_w)
            blob = random_maps(shape, seed=self.seed + row) if name == 'random' \
                else centre_blob_maps(shape)
            maps[row, :img_h, :img_w] = blob[0].to(device)
        return maps

    def _insertion_canvas(self, pixels: Tensor, samples: list, targets: List[tuple]) -> Tensor:
        if self.insertion_canvas == 'black':
            return torch.zeros_like(pixels)
        # Two box blurs of a quarter of the image's shorter side: a strong blur,
        # so that small objects are no longer recognisable on the canvas.
        index = targets[0][0]
        size = max(3, min(samples[index].metainfo['img_shape'][:2]) // 4) | 1
        canvas = pixels
        for _ in range(2):
            canvas = F.avg_pool2d(F.pad(canvas, [size // 2] * 4, mode='replicate'), size, stride=1)
        return canvas

    # ----------------------------------------------------------------- process
    @torch.no_grad()
    def process(self, data: dict) -> None:
        """Score every algorithm and baseline on one batch of the test loader."""
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

        def score(pixel_images: Tensor) -> Tensor:
            return self._scores((pixel_images - mean) / std, samples, targets)

        p_image = score(pixels)
        methods = {name: self._explain(name, inputs, samples, targets, replicate=False)
                   for name in self.explainers}
        methods.update({name: self._baseline(name, samples, targets, input_shape, inputs.device)
                        for name in BASELINES})
        for name, maps in methods.items():
            values = self.values[name]
            for row, (index, _, boxes) in enumerate(targets):
                if boxes is None:
                    continue
                meta = dict(samples[index].metainfo, explain_input_shape=input_shape,
                            explain_cell_grid=PIXELS)
                original = to_original_image(maps[row:row + 1], meta)
                values['pointing_game'].append(
                    float(pointing_game_hits(original, [boxes], self.tolerance)[0]))
            ranked = maps.masked_fill(maps == 0, -1.0)  # padding and zeros last
            curves = insertion_deletion(score, pixels, ranked, insertion_canvas,
                                        torch.zeros_like(pixels), self.steps)
            explanation = pixels * maps[:, None]
            if name in BASELINES:  # image-independent: the same map for any input
                maps_of_explanation = maps
            else:
                maps_of_explanation = self._explain(name, (explanation - mean) / std, samples,
                                                    targets, replicate=True)
            parts = adcc(p_image, score(explanation), maps, maps_of_explanation)
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
