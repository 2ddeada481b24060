"""The adapter of detectors that predict instance masks mmxai reads only from their predictions."""
from torch import nn

from .dense_heads import unreadable_head_reason
from .detector import DetectorAdapter


def predicts_instance_masks(model: nn.Module) -> bool:
    """Whether a detector without an RoI mask head predicts instance masks.

    Single-stage instance segmentors (SOLO, SOLOv2, CondInst, BoxInst,
    YOLACT), RTMDet-Ins, and MaskFormer-style segmenters whose fusion head
    predicts instances (``test_cfg.instance_on``).
    """
    from mmdet.models.dense_heads import RTMDetInsHead
    from mmdet.models.detectors.single_stage_instance_seg import SingleStageInstanceSegmentor
    if isinstance(model, SingleStageInstanceSegmentor) or \
            isinstance(getattr(model, 'bbox_head', None), RTMDetInsHead):
        return True
    fusion = getattr(model, 'panoptic_fusion_head', None)
    return bool(((getattr(fusion, 'test_cfg', None) or {}).get('instance_on', False)))


def reads_masks_only(model: nn.Module) -> bool:
    """Whether a detector's class maps can come from its predicted masks only.

    It predicts instance masks (:func:`predicts_instance_masks`) and has no
    dense head whose class scores mmxai reads per cell (which would give maps
    of every place, not only of its detections).
    """
    return predicts_instance_masks(model) and \
        unreadable_head_reason(getattr(model, 'bbox_head', None)) is not None


class PredictedMaskAdapter(DetectorAdapter):
    """Adapter for detectors whose instance masks are read from their predictions.

    These models (SOLO, SOLOv2, CondInst, RTMDet-Ins, Mask2Former, ...) make
    their masks inside their own ``predict`` and return them thresholded
    (``pred_instances.masks``, on the original image); no module outputs a
    mask per detection that a hook could keep. Feature maps are kept as for
    every detector.
    """

    family = 'mask_prediction'
