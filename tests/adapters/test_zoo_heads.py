"""Every dense head of the installed MMDetection's zoo, read by its rule, not by a table entry.

``test_cell_placement`` and ``test_dense_heads`` check the heads they name.
These walk every config family of the installed MMDetection (one config each,
as the detector zoo test picks it) and, for each whose dense head mmxai reads
per cell (the head's own rule or an ancestor's), check that a one-hot class
score lands on the prior MMDetection's own generator reports, and that each
prediction's per-box map peaks at least at the prediction's score. So a head
that a new MMDetection adds, and mmxai reads through its ancestry, is checked
without anyone naming it.
"""
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmxai.adapters import build_adapter
from mmxai.adapters.dense_heads import CORNER_HEADS, HEATMAP_HEADS, supported_head_type
from mmxai.apis.inference import image_pipelines
from mmxai.explainers import DetClassProbabilityMap
from mmxai.models import ExplainModel
from mmxai.utils import UnsupportedModelError, UserInputError
from tests.adapters.test_cell_placement import (
    ORIGINAL,
    SCALE,
    misplaced_levels,
)
from tests.detector_zoo import (
    family_configs,
    lower_score_thresholds,
    representative_config,
    zoo_config,
)
from tests.helpers import build_model

FAMILIES = family_configs()


#: Score threshold of the peak check: random weights score most priors near 0.
PEAK_SCORE_THR = 1e-6
#: Test resize of the peak check.
PEAK_SIZE = 640


def _dense_head_detector(family):
    """The family's config and detector if mmxai reads its dense head per cell, else None."""
    path = representative_config(FAMILIES[family])
    if path is None:
        return None, None
    # 640 px: MMCV's deformable convolution (DDOD) needs 3 x 3 maps at stride 128.
    cfg = zoo_config(path, size=PEAK_SIZE)
    lower_score_thresholds(cfg.model, PEAK_SCORE_THR)
    if 'conf_thr' in cfg.model.get('test_cfg', {}):  # YOLOv3's objectness threshold
        cfg.model.test_cfg.conf_thr = PEAK_SCORE_THR
    if 'bbox_head' not in cfg.model:
        return None, None
    try:
        model = build_model(cfg)
    except UserInputError:  # cannot be built here: the detector zoo test checks the refusal
        return None, None
    if supported_head_type(model.bbox_head) is None:
        return None, None
    adapter = build_adapter(model)
    assert adapter.family == 'detection', (family, adapter.family)
    return cfg, model


@pytest.mark.zoo
@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_every_read_head_places_its_cells_and_peaks_at_its_scores(family):
    cfg, model = _dense_head_detector(family)
    if model is None:  # not a dense head mmxai reads: the detector zoo test covers it
        return
    head = model.bbox_head
    rule = supported_head_type(head)
    # Heatmap heads have no prior generator; test_heatmap_heads places their cells.
    if rule not in HEATMAP_HEADS:
        # SSD's generator is made for one input size (its last level: 1 cell of 300 px).
        size = getattr(head.prior_generator, 'input_size', None)
        misplaced = misplaced_levels(model, *(((size, size), size) if size else
                                              (ORIGINAL, SCALE)))
        assert not misplaced, f'{family} ({type(head).__name__}): ' + '\n'.join(misplaced)
    if rule in CORNER_HEADS:  # cells are corners: per-box maps are refused (tested there)
        return
    # Each prediction's own map peaks at least at its score: random weights, the
    # config's own test pipeline, every score threshold lowered so that it predicts.
    if hasattr(head, 'convs_pred'):
        # YOLOv3: Darknet-53's random activations reach 1e3, so every score saturates and
        # every box overflows; zero prediction layers score each prior by their biases.
        for conv in head.convs_pred:
            torch.nn.init.zeros_(conv.weight)
    _, array_pipeline = image_pipelines(cfg)
    image = np.random.default_rng(0).integers(0, 256, (512, 640, 3), dtype=np.uint8)
    try:
        explain = ExplainModel(model, score_thr=PEAK_SCORE_THR, box_targets=['predictions'])
        assert isinstance(explain.explainer, DetClassProbabilityMap)
        with torch.no_grad():
            out = explain.test_step(pseudo_collate([array_pipeline(dict(img=image))]))[0]
    except UnsupportedModelError as error:
        # Refused, not drawn: SSD cannot predict in MMDetection 3.3 (its own bug), and
        # random weights can overflow into boxes at inf or without area.
        assert 'has no loss_cls' in str(error) or 'not finite or have no area' in str(error), \
            error
        return
    kept = out.pred_instances.scores >= PEAK_SCORE_THR
    records, scores = out.metainfo['explained_boxes'], out.pred_instances.scores[kept]
    assert len(records) == len(scores) > 0, family
    # PAA scores sqrt(class x IoU): above its class probability p where IoU > p,
    # never above sqrt(p) (IoU <= 1), so its floor is score ** 2.
    floor = (lambda score: score ** 2) if rule == 'PAAHead' else (lambda score: score)
    below = [(r['evidence'], float(s)) for r, s in zip(records, scores)
             if r['evidence'] < floor(float(s)) * (1 - 1e-4)]
    assert not below, f'{family} ({type(head).__name__}): peaks below scores {below[:5]}'
