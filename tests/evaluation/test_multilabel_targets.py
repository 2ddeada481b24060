"""Multi-label classification: every label of an image is a target, with its own object."""
import json
import os.path as osp

import cv2
import numpy as np
from mmengine.config import Config
from mmengine.runner import Runner

from mmxai.apis import process_batches, set_data_root
from mmxai.datasets import SHAPE_CLASSES, make_multilabel_split
from mmxai.evaluation import ExplanationEvaluator
from mmxai.evaluation.evaluator import label_boxes_beside_image

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'demo', 'resnet_multilabel_shapes.py')


def test_multilabel_split_is_mmpretrains_format_with_each_labels_box(tmp_path):
    ann_file = make_multilabel_split(str(tmp_path), 'val', 4, image_size=128, seed=2,
                                     object_size=(30, 40))
    annotation = json.loads(open(ann_file).read())
    assert annotation['metainfo']['classes'] == list(SHAPE_CLASSES)
    for item in annotation['data_list']:
        path = osp.join(str(tmp_path), item['img_path'])
        image = cv2.imread(path).astype(int)
        boxes = label_boxes_beside_image(path)
        assert sorted(boxes) == item['gt_label'] and len(item['gt_label']) == 2
        for label, box in boxes.items():
            x1, y1, x2, y2 = box[0].int().tolist()
            centre = image[(y1 + y2) // 2 + 3, (x1 + x2) // 2]  # inside every shape
            colour = np.array(list(SHAPE_CLASSES.values())[label][1])
            assert np.abs(centre - colour).max() < 60, (label, centre.tolist())


def test_every_label_of_an_image_is_scored(tmp_path):
    root = str(tmp_path / 'data')
    make_multilabel_split(root, 'val', 3, image_size=128, seed=4, object_size=(30, 40))
    cfg = set_data_root(Config.fromfile(CONFIG), root)
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)  # random weights: what is counted, not how well
    evaluator = ExplanationEvaluator(runner.model.eval(), ['classwisesaliencymap'])
    assert evaluator.adapter.multi_label
    process_batches(runner.build_dataloader(cfg.test_dataloader), evaluator.process, 'scored')
    hits = evaluator.values['classwisesaliencymap']['pointing_game']
    assert len(hits) == 3 * 2 and set(hits) <= {0.0, 1.0}


def test_mosaics_go_through_the_demo_models_gem_pooling(tmp_path):
    """The demo multi-label model pools with GeM, not an average: Recipro-CAM's
    mosaics must be scored through that neck, so the full map gives the model's logits."""
    from tests.classifier_zoo import explain_family
    outcome = explain_family(CONFIG, str(tmp_path),
                             methods=('classwisesaliencymap',))['classwisesaliencymap']
    assert 'maps' in outcome, outcome
    assert outcome['logits_error'] is not None and outcome['logits_error'] < 1e-5
