"""A class score lands on the original image where the head's own prior for it sits.

For every head of the support table: a one-hot class score at cell k of a
level goes through DetClassProbabilityMap, the merge of levels and the undoing
of a real resize + pad pipeline; the centre of the map on the original image
must be the centre of the prior that MMDetection's own generator reports for
cell k (divided by the resize factor), within 1 px.
"""
import numpy as np
import pytest
import torch
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

from mmxai.adapters import build_adapter
from mmxai.adapters.dense_heads import PROBABILITY_OUTPUTS, objectness_output
from mmxai.explainers import DetClassProbabilityMap
from mmxai.geometry import to_original_image
from tests.adapters.test_dense_heads import (
    HEAD_CONFIGS,
    NMS_HEAD_CONFIGS,
    NUM_CLASSES,
    SSD_CONFIG,
)
from tests.helpers import build_model, load_config

CONFIGS = dict(HEAD_CONFIGS, **NMS_HEAD_CONFIGS, SSDHead=SSD_CONFIG,
               PAAHead='mmdet::paa/paa_r50_fpn_1x_coco.py')
#: (h, w) of the original image and the resize scale. The map of a cell spreads
#: one stride around it; the image is large enough for that to stay inside it
#: at every level (SSD's last level has a stride of 320 px).
ORIGINAL, SCALE = (430, 540), 640  # resized by 640 / 540, then padded
SSD_ORIGINAL, SSD_SCALE = (500, 500), 1600
LOGIT = 20.0


def packed_image(original, scale):
    """A random image of size ``original`` through a real resize-and-pack test pipeline."""
    image = np.random.default_rng(0).integers(0, 256, (*original, 3), dtype=np.uint8)
    init_default_scope('mmdet')
    pipeline = Compose([dict(type='mmxai.LoadImageFromArray'),
                        dict(type='Resize', scale=(scale, scale), keep_ratio=True),
                        dict(type='PackDetInputs', meta_keys=(
                            'img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))])
    return {k: [v] for k, v in pipeline(dict(img=image, img_id=0)).items()}


def _input(model, original, scale):
    data = model.data_preprocessor(packed_image(original, scale), False)
    return data['inputs'], data['data_samples'][0]


class OneHotClassScore:
    """Forward hook on a dense head: class 0 certain at one cell of one level, absent elsewhere."""

    def __init__(self, head):
        self.head, self.level, self.cell = head, 0, (0, 0)

    def __call__(self, _module, _args, outputs):
        if type(self.head).__name__ == 'YOLOV3Head':
            return self.yolov3(outputs)
        head, channels = self.head, self.head.cls_out_channels
        # TOOD's forward gives probabilities: certain is 1, absent 0.
        low, high = (0.0, 1.0) if type(head).__name__ in PROBABILITY_OUTPUTS else (-LOGIT, LOGIT)
        scores = []
        for level, cls_score in enumerate(outputs[0]):
            batch, _, height, width = cls_score.shape
            logits = cls_score.new_full((batch, cls_score.shape[1] // channels, channels,
                                         height, width), low)
            if not head.use_sigmoid_cls:  # softmax over classes + background (last)
                logits[:, :, -1] = high
            if level == self.level:
                y, x = self.cell
                logits[:, :, :, y, x] = low
                logits[:, :, 0, y, x] = high
            scores.append(logits.flatten(1, 2))
        outputs = list(outputs)
        outputs[0] = scores
        if objectness_output(head):  # objectness, multiplied in: certain everywhere
            outputs[2] = [torch.full_like(o, LOGIT) for o in outputs[2]]
        return tuple(outputs)

    def yolov3(self, outputs):
        """YOLOv3's one output per level: (x, y, w, h, objectness, classes) per anchor."""
        pred_maps = []
        for level, pred_map in enumerate(outputs[0]):
            batch, _, height, width = pred_map.shape
            attributes = pred_map.clone().reshape(batch, -1, self.head.num_attrib, height, width)
            attributes[:, :, 4] = LOGIT
            attributes[:, :, 5:] = -LOGIT
            if level == self.level:
                attributes[:, :, 5, self.cell[0], self.cell[1]] = LOGIT
            pred_maps.append(attributes.flatten(1, 2))
        return (pred_maps,)


@pytest.mark.parametrize('head_name', sorted(CONFIGS))
def test_one_hot_score_lands_on_its_prior(head_name):
    cfg = load_config(CONFIGS[head_name])
    cfg.model.bbox_head.num_classes = NUM_CLASSES
    model = build_model(cfg)
    assert type(model.bbox_head).__name__ == head_name
    misplaced = misplaced_levels(model, *((SSD_ORIGINAL, SSD_SCALE) if head_name == 'SSDHead'
                                          else (ORIGINAL, SCALE)))
    assert not misplaced, '\n'.join(misplaced)


def misplaced_levels(model, original=ORIGINAL, scale=SCALE):
    """The levels of a dense-head detector where a one-hot class score's map misses its prior.

    Returns:
        list[str]: One line per level whose map centre on the original image
        is more than 1 px from the prior's centre; empty when all land.
    """
    head = model.bbox_head
    inputs, sample = _input(model, original, scale)
    adapter, explainer = build_adapter(model), DetClassProbabilityMap()
    one_hot = OneHotClassScore(head)
    handle = head.register_forward_hook(one_hot)  # before the adapter's: it captures the change
    scale_x, scale_y = sample.metainfo['scale_factor']
    misplaced = []
    with torch.no_grad(), adapter.capture():
        features = model.extract_feat(inputs)
        sizes = [tuple(f.shape[-2:]) for f in features]
        # MMDetection's own prior centres for the real feature map sizes.
        priors = head.prior_generator.grid_priors(sizes, device='cpu')
        for level, (height, width) in enumerate(sizes):
            one_hot.level, one_hot.cell = level, (height // 2, width // 2)
            head(features)
            maps = explainer(adapter)
            grid = explainer.map_grid(adapter, tuple(maps.shape[-2:]))
            # Unnormalised: a one-cell level (SSD300's last) gives a flat map, whose
            # min-max normalisation would be float noise.
            original = to_original_image(maps[0, :1], sample.metainfo, tuple(inputs.shape[-2:]),
                                         grid, normalize='none')[0].double()
            ys = torch.arange(original.shape[0], dtype=torch.float64) + 0.5  # pixel centres
            xs = torch.arange(original.shape[1], dtype=torch.float64) + 0.5
            centre_y = float((original.sum(1) * ys).sum() / original.sum())
            centre_x = float((original.sum(0) * xs).sum() / original.sum())
            per_cell = len(priors[level]) // (height * width)
            cell = (height // 2) * width + width // 2
            prior = priors[level][cell * per_cell:(cell + 1) * per_cell].double()
            prior_x, prior_y = (prior[:, :2] if prior.shape[1] == 2
                                else (prior[:, :2] + prior[:, 2:4]) / 2).mean(0).tolist()
            error = max(abs(centre_x - prior_x / scale_x), abs(centre_y - prior_y / scale_y))
            if error > 1.0:
                misplaced.append(f'level {level} (stride {head.prior_generator.strides[level]}): '
                                 f'map at ({centre_x:.1f}, {centre_y:.1f}), prior at '
                                 f'({prior_x / scale_x:.1f}, {prior_y / scale_y:.1f})')
    handle.remove()
    return misplaced
