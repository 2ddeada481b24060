"""Turn an exported model's raw outputs into predicted data samples, with mmdet/mmpretrain code.

The graph ends where the model's ``'tensor'`` mode ends (classifier logits,
dense-head outputs per level); what MMDetection and MMPretrain do after that
runs here, with their own code on a head built from the config (decoding and
NMS need no weights), so the predictions are the PyTorch model's.
"""
from typing import Dict, List

import torch
from mmengine.config import ConfigDict
from mmengine.registry import MODELS
from torch import Tensor, nn

from .metadata import ExportMetadata


class OutputDecoder:
    """Base: ``decoder(outputs, samples)`` fills the samples' predictions.

    Args:
        model_cfg (ConfigDict): The ``model`` section of the config.
        metadata (ExportMetadata): The exported model's metadata.
    """

    def __init__(self, model_cfg: ConfigDict, metadata: ExportMetadata) -> None:
        self.metadata = metadata
        self.head = self.build_head(model_cfg).eval()

    def build_head(self, model_cfg: ConfigDict) -> nn.Module:
        """The head whose post-processing is reused (random weights: never run)."""
        raise NotImplementedError

    def __call__(self, outputs: Dict[str, Tensor], samples: list) -> list:
        """Predicted data samples from the named outputs of one batch."""
        raise NotImplementedError


class ClassificationDecoder(OutputDecoder):
    """Scores and labels from ``logits`` with the head's own ``_get_predictions``."""

    def build_head(self, model_cfg: ConfigDict) -> nn.Module:
        return MODELS.build(model_cfg.head)

    def __call__(self, outputs: Dict[str, Tensor], samples: list) -> list:
        return self.head._get_predictions(outputs['logits'], samples)


class DetectionDecoder(OutputDecoder):
    """Boxes from the dense head's outputs with its own ``predict_by_feat`` (NMS included)."""

    def build_head(self, model_cfg: ConfigDict) -> nn.Module:
        head = ConfigDict(model_cfg.bbox_head)
        head.update(train_cfg=None, test_cfg=model_cfg.get('test_cfg'))
        return MODELS.build(head)

    def __call__(self, outputs: Dict[str, Tensor], samples: list) -> list:
        from mmdet.structures.bbox import get_box_tensor
        head_outputs: List[List[Tensor]] = [[outputs[name] for name in item]
                                            for item in self.metadata.head_outputs]
        with torch.no_grad():
            results = self.head.predict_by_feat(
                *head_outputs, batch_img_metas=[s.metainfo for s in samples], rescale=True)
        for sample, instances in zip(samples, results):
            instances.bboxes = get_box_tensor(instances.bboxes)  # as the detector returns them
            sample.pred_instances = instances
        return samples


def build_decoder(model_cfg: ConfigDict, metadata: ExportMetadata) -> OutputDecoder:
    """The decoder for the exported model's task."""
    decoder = DetectionDecoder if metadata.task == 'detection' else ClassificationDecoder
    return decoder(model_cfg, metadata)
