"""The pointing game as an MMEngine metric inside ``runner.test()``."""
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric

from ..models import maps_on_original_image, peak_region_on_original_image
from ..registry import METRICS
from .evaluator import boxes_beside_image
from .functional import pointing_game_hits


@METRICS.register_module()
class PointingGameMetric(BaseMetric):
    """Share of class maps whose maximum lies in a ground-truth box of their class.

    Reads the maps that ``mmxai.ExplainModel`` attaches (so explain mode must
    be on, see ``PrepareExplainHook``), brought to the original image and
    normalised as ``--save-raw`` writes them. Detection boxes come from the
    samples' ``gt_instances`` (original pixels: MMDetection's test pipelines
    load annotations after ``Resize``), classification boxes from a JSON beside
    each image. The maximum is read within the span of the map's cells
    (:func:`mmxai.models.peak_region_on_original_image`). Only explained
    classes present in the image's ground truth count; class-agnostic maps
    count against every ground-truth box.

    Args:
        tolerance (float): Distance in pixels that still counts as a hit.
        collect_device (str): As in MMEngine's ``BaseMetric``.
        prefix (str, optional): Metric name prefix; default ``saliency``.
    """

    default_prefix = 'saliency'

    def __init__(self, tolerance: float = 0.0, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.tolerance = tolerance

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        # One result per sample: MMEngine truncates results to the dataset size.
        for sample in data_samples:
            self.results.append(self._hits(sample))

    def _hits(self, sample: dict) -> List[bool]:
        """Pointing-game hits of one sample's class maps."""
        hits: List[bool] = []
        if 'saliency_map' not in sample:
            raise KeyError('PointingGameMetric needs saliency maps: add '
                           "dict(type='mmxai.PrepareExplainHook') to custom_hooks")
        if 'gt_instances' in sample:
            boxes, labels = sample['gt_instances']['bboxes'], sample['gt_instances']['labels']
        else:
            boxes = boxes_beside_image(sample['img_path'])
            if boxes is None:
                return hits
            labels = torch.as_tensor(sample['gt_label']).reshape(-1)[:1]
        maps = maps_on_original_image(sample['saliency_map'], sample)
        region = peak_region_on_original_image(sample['saliency_map'], sample)
        for row, label in enumerate(sample['explained_classes'].tolist()):
            class_boxes = boxes if label < 0 else boxes[labels.to(boxes.device) == label]
            if len(class_boxes):
                hit = pointing_game_hits(maps[row:row + 1], [class_boxes], self.tolerance,
                                         region)
                hits.append(bool(hit[0]))
        return hits

    def compute_metrics(self, results: List[List[bool]]) -> Dict[str, float]:
        hits = [hit for sample_hits in results for hit in sample_hits]
        return dict(pointing_game=sum(hits) / max(len(hits), 1),
                    pointing_game_maps=float(len(hits)))
