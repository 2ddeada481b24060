"""Maps must peak on the evidence: trained models pass, untrained ones fail.

Held-out shapes images hold objects of known classes and boxes; a map "hits"
when its maximum, brought back to the original image, lies inside the box of
its class (no tolerance).
"""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmxai.apis import explain_config
from tests.helpers import check_ceiling, check_floor


def _hit_rate(config_path, checkpoint, out_dir, algorithm, boxes_of, target_classes):
    cfg = explain_config(Config.fromfile(config_path), checkpoint, out_dir,
                         explain=dict(explainer=algorithm, target_classes=target_classes),
                         write=dict(save_raw=True))
    cfg.work_dir = osp.join(out_dir, 'logs')
    Runner.from_cfg(cfg).test()
    with open(osp.join(out_dir, 'manifest.json')) as file:
        manifest = json.load(file)
    hits, total = 0, 0
    for entry in manifest['images']:
        for explanation in entry['explanations']:
            box = boxes_of(entry['image']).get(explanation['class_index'])
            if box is None:
                continue
            saliency = np.load(osp.join(out_dir, explanation['raw']))
            y, x = np.unravel_index(saliency.argmax(), saliency.shape)
            hits += box[0] <= x < box[2] and box[1] <= y < box[3]
            total += 1
    assert total >= 20
    return hits / total


def _coco_boxes(ann_file):
    with open(ann_file) as file:
        coco = json.load(file)
    names = {image['id']: image['file_name'] for image in coco['images']}
    boxes = {}
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        boxes.setdefault(names[ann['image_id']], {})[ann['category_id'] - 1] = (x, y, x + w, y + h)
    return lambda path: boxes[osp.basename(path)]


def _random_checkpoint(config_path, out_path):
    from tests.helpers import build_model
    model = build_model(Config.fromfile(config_path), seed=1)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, out_path)
    return out_path


def test_detection_class_maps_peak_inside_their_objects(trained_detector, shapes_detection,
                                                        tmp_path):
    config_path, checkpoint = trained_detector
    boxes_of = _coco_boxes(osp.join(shapes_detection, 'val.json'))
    # Every class present is explained (maps of absent classes are not scored).
    rate = _hit_rate(config_path, checkpoint, str(tmp_path / 'trained'),
                     'classwisesaliencymap', boxes_of, [0, 1, 2])
    check_floor('detection class maps pointing game', rate, 0.9)
    untrained = _random_checkpoint(config_path, str(tmp_path / 'random.pth'))
    rate = _hit_rate(config_path, untrained, str(tmp_path / 'random'),
                     'classwisesaliencymap', boxes_of, [0, 1, 2])
    check_ceiling('detection class maps pointing game, untrained', rate, 0.9)


def test_mask_rcnn_class_maps_peak_inside_their_objects(trained_mask_rcnn, shapes_detection,
                                                       tmp_path):
    config_path, checkpoint = trained_mask_rcnn
    boxes_of = _coco_boxes(osp.join(shapes_detection, 'val.json'))
    # A low threshold, so that the untrained model's maps are not all 0 (its
    # class scores are ~1/4): they average masks in its random boxes.
    mask_class_map = dict(algorithm='classwisesaliencymap', score_thr=0.05)
    rate = _hit_rate(config_path, checkpoint, str(tmp_path / 'trained'), mask_class_map,
                     boxes_of, [0, 1, 2])
    # Training seeds 0-3 give 1.000, seed 4 0.950 (one miss of 20 targets); untrained
    # 0.35 at most. 0.8 is three misses under the worst seed, far above untrained.
    check_floor('mask class maps pointing game', rate, 0.8)
    untrained = _random_checkpoint(config_path, str(tmp_path / 'random.pth'))
    rate = _hit_rate(config_path, untrained, str(tmp_path / 'random'), mask_class_map,
                     boxes_of, [0, 1, 2])
    check_ceiling('mask class maps pointing game, untrained', rate, 0.8)


def _folder_boxes(path):
    with open(osp.splitext(path)[0] + '.json') as file:
        info = json.load(file)
    return {info['label']: info['bbox']}


def test_recipro_cam_peaks_inside_the_object(trained_classifier, tmp_path):
    config_path, checkpoint = trained_classifier
    rate = _hit_rate(config_path, checkpoint, str(tmp_path / 'trained'),
                     'classwisesaliencymap', _folder_boxes, [0, 1, 2])
    # Measured (benchmarks/quality_floors.py, docs/development.md): training seeds
    # 0, 1, 2 give 0.833, 1.000, 0.767 (n = 30 images each); 0.833 on issue 25's new
    # machine, 0.90-0.93 in earlier CI runs; 0.30 untrained. 0.6 is five hits of 30
    # under the worst seed and nine above the untrained model.
    check_floor('Recipro-CAM pointing game', rate, 0.6)
    untrained = _random_checkpoint(config_path, str(tmp_path / 'random.pth'))
    rate = _hit_rate(config_path, untrained, str(tmp_path / 'random'),
                     'classwisesaliencymap', _folder_boxes, [0, 1, 2])
    check_ceiling('Recipro-CAM pointing game, untrained', rate, 0.6)


# Floors under the measured rates (README: classification 0.90 for every
# method; detection LayerCAM/HiResCAM 1.00, Grad-CAM 0.60-0.65, Grad-CAM++
# 0.28-0.35, XGrad-CAM 0.40-0.50, where the random baseline gets 0.17):
# Grad-CAM-style channel weights are global, so on two-object images they
# light up both objects; Grad-CAM++ and XGrad-CAM are only asserted to beat random.
@pytest.mark.parametrize('algorithm, det_floor', [
    ('gradcam', 0.4), ('gradcampp', 0.2), ('xgradcam', 0.2), ('layercam', 0.8),
    ('hirescam', 0.8)])
def test_gradient_methods_peak_inside_the_object(trained_classifier, trained_detector,
                                                 shapes_detection, tmp_path, algorithm,
                                                 det_floor):
    config_path, checkpoint = trained_classifier
    rate = _hit_rate(config_path, checkpoint, str(tmp_path / 'cls'), algorithm, _folder_boxes,
                     [0, 1, 2])
    # Seeds 0, 1, 2: 0.83-0.90, 1.00, 0.77 for every gradient method (n = 30).
    check_floor(f'{algorithm} classification pointing game', rate, 0.6)
    config_path, checkpoint = trained_detector
    boxes_of = _coco_boxes(osp.join(shapes_detection, 'val.json'))
    rate = _hit_rate(config_path, checkpoint, str(tmp_path / 'det'), algorithm, boxes_of,
                     [0, 1, 2])
    check_floor(f'{algorithm} detection pointing game', rate, det_floor)
    if algorithm in ('gradcam', 'layercam'):  # an untrained detector fails the same check
        untrained = _random_checkpoint(config_path, str(tmp_path / 'random.pth'))
        rate = _hit_rate(config_path, untrained, str(tmp_path / 'random'), algorithm, boxes_of,
                         [0, 1, 2])
        check_ceiling(f'{algorithm} detection pointing game, untrained', rate, det_floor)
    if algorithm == 'gradcam':
        # Not for LayerCAM: on one-object images an untrained ResNet's positive
        # gradient x activation already lands on the only coloured blob (0.8).
        config_path, _ = trained_classifier
        untrained = _random_checkpoint(config_path, str(tmp_path / 'random_cls.pth'))
        rate = _hit_rate(config_path, untrained, str(tmp_path / 'random_cls'), algorithm,
                         _folder_boxes, [0, 1, 2])
        check_ceiling(f'{algorithm} classification pointing game, untrained', rate, 0.8)


def test_black_box_methods_peak_inside_the_object(trained_classifier, trained_detector,
                                                  shapes_detection, tmp_path):
    config_path, checkpoint = trained_classifier
    rise = dict(algorithm='rise', num_masks=200)
    rate = _hit_rate(config_path, checkpoint, str(tmp_path / 'rise'), rise, _folder_boxes,
                     [0, 1, 2])
    check_floor('RISE (200 masks) classification pointing game', rate, 0.7)
    config_path, checkpoint = trained_detector
    boxes_of = _coco_boxes(osp.join(shapes_detection, 'val.json'))
    # 100 masks (the tool's default is 1,000): 1.000 with 200 masks for training seeds 0-4.
    drise = dict(algorithm='drise', num_masks=100)
    rate = _hit_rate(config_path, checkpoint, str(tmp_path / 'drise'), drise, boxes_of,
                     [0, 1, 2])
    check_floor('D-RISE (100 masks) detection pointing game', rate, 0.8)
    # Untrained: no box to explain, all maps 0 (and no mask is run): the peak is luck.
    untrained = _random_checkpoint(config_path, str(tmp_path / 'random.pth'))
    rate = _hit_rate(config_path, untrained, str(tmp_path / 'random'), drise, boxes_of,
                     [0, 1, 2])
    check_ceiling('D-RISE (100 masks) detection pointing game, untrained', rate, 0.8)
