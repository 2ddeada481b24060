"""The adapter of MMDetection detectors: feature maps and a dense head."""
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..boxes import fill_boxes_from_masks
from ..geometry import CellGrid
from ..utils.errors import UnsupportedModelError
from .base import ModelAdapter
from .dense_heads import (
    HEATMAP_HEADS,
    anchor_class_probabilities,
    class_probability_levels,
    decoded_prior_boxes,
    prior_grids,
    supported_head_type,
)


class DetectorAdapter(ModelAdapter):
    """Adapter for MMDetection detectors: feature maps and dense-head outputs.

    Keeps the neck's (or backbone's) feature maps and, for single-stage
    detectors, the dense ``bbox_head``'s outputs. Two-stage detectors without
    a mask head are served too (feature maps and predictions of masked
    inputs); see :class:`InstanceSegmentationAdapter`
    for detectors with an RoI mask head.
    """

    task = 'detection'
    family = 'detection'

    def modules_to_capture(self) -> Dict[str, nn.Module]:
        model = self.model
        modules = {'features': model.neck if getattr(model, 'with_neck', False) else model.backbone}
        if self.dense_head is not None:
            modules['bbox_head'] = self.dense_head
        return modules

    @property
    def dense_head(self) -> Optional[nn.Module]:
        """The single-stage head (``bbox_head``) that predicts per location, if any."""
        return getattr(self.model, 'bbox_head', None)

    def feature_maps(self) -> List[Tensor]:
        features = self.captured('features')
        return list(features) if isinstance(features, (tuple, list)) else [features]

    @property
    def prior_generator(self) -> Optional[Any]:
        """The prior generator of the head that reads the feature maps, if any.

        The dense head's, or a two-stage detector's RPN head's.
        """
        head = self.dense_head or getattr(self.model, 'rpn_head', None)
        return getattr(head, 'prior_generator', None)

    def level_grids(self) -> List[CellGrid]:
        """Each level's cells where the head's own priors put them."""
        generator = self.prior_generator
        num_levels = len(self.feature_maps())
        if supported_head_type(self.dense_head) in HEATMAP_HEADS:  # a cell's block, centred
            return [CellGrid.of_ratio(self.input_shape, tuple(f.shape[-2:]), 'center')
                    for f in self.feature_maps()]
        if generator is None or generator.num_levels != num_levels:
            return super().level_grids()
        if getattr(self, '_prior_grids', None) is None:
            self._prior_grids = prior_grids(generator)
        return self._prior_grids

    def class_probability_levels(self) -> List[Tensor]:
        """Per-level class probabilities (B, K, h_l, w_l), max over anchors."""
        return class_probability_levels(self.dense_head, self.captured('bbox_head'))

    def anchor_class_probabilities(self) -> List[Tensor]:
        """Per-level class probabilities of every anchor (B, A, K, h_l, w_l)."""
        return anchor_class_probabilities(self.dense_head, self.captured('bbox_head'))

    def prior_boxes(self, image: int, img_shape: Optional[Tuple[int, int]] = None
                    ) -> List[Tensor]:
        """Per level, the (h * w * A, 4) boxes the priors of one image regress to.

        Decoded from the captured head outputs as the head's own prediction
        decodes them (see :func:`~mmxai.adapters.dense_heads.decoded_prior_boxes`),
        in network-input pixels; the network does not run again.

        Args:
            image (int): Index of the image in the batch.
            img_shape (tuple, optional): The image's own (H, W) before batch
                padding (metainfo ``img_shape``), which the head clips its boxes
                to; default the batch's input shape.
        """
        return decoded_prior_boxes(self.dense_head, self.captured('bbox_head'), image,
                                   tuple(img_shape[:2]) if img_shape else self.input_shape,
                                   self.input_shape)

    def detections_of_inputs(self, inputs: Tensor, sample: Any,
                             rescale: bool = True) -> List[Any]:
        """The detector's predictions (``InstanceData``) for inputs shaped like ``sample``'s.

        Args:
            inputs (Tensor): (n, 3, H, W) preprocessed inputs (e.g. masked).
            sample: The data sample whose metainfo (sizes, scale) they share.
            rescale (bool): Boxes in original pixels (True) or network-input pixels.
        """
        samples = [type(sample)(metainfo=sample.metainfo) for _ in range(len(inputs))]
        detections = [s.pred_instances for s in self.model.predict(inputs, samples,
                                                                   rescale=rescale)]
        for instances in detections:
            fill_boxes_from_masks(instances)
        return detections

    def scores_after_features(self, features: List[Tensor], score_thr: float) -> Tensor:
        return self._scores_from_levels(self.dense_head(tuple(features)), score_thr)

    def scores_from_input(self, inputs: Tensor, score_thr: float) -> Tensor:
        return self._scores_from_levels(self.dense_head(self.model.extract_feat(inputs)),
                                        score_thr)

    def _scores_from_levels(self, head_outputs: Any, score_thr: float) -> Tensor:
        levels = class_probability_levels(self.dense_head, head_outputs)
        probabilities = torch.cat([level.flatten(2) for level in levels], dim=2)  # (B, K, N)
        predicted = probabilities.detach() >= score_thr
        return torch.where(predicted.any(-1), (probabilities * predicted).sum(-1),
                           probabilities.amax(-1))

    @property
    def num_classes(self) -> int:
        """The class count of the head that predicts the classes.

        The dense ``bbox_head``, else a ``mask_head`` (SOLO, CondInst) or
        ``panoptic_head`` (MaskFormer), else the RoI box head (the last
        stage's for cascades).

        Raises:
            UnsupportedModelError: If no head says how many classes it predicts.
        """
        roi_head = getattr(self.model, 'roi_head', None)
        for head in (self.dense_head, getattr(self.model, 'mask_head', None),
                     getattr(self.model, 'panoptic_head', None),
                     getattr(roi_head, 'bbox_head', None)):
            head = head[-1] if isinstance(head, nn.ModuleList) else head
            if isinstance(getattr(head, 'num_classes', None), int):
                return head.num_classes
        raise UnsupportedModelError(f'{type(self.model).__name__}: none of its heads says how '
                                    'many classes it predicts')
