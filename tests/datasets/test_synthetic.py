import json
import os.path as osp

import cv2

from mmxai.datasets import SHAPE_CLASSES, make_classification_split, make_detection_split


def test_detection_split_is_valid_coco_and_deterministic(tmp_path):
    ann = make_detection_split(str(tmp_path / 'a'), 'val', 4, image_size=128, seed=3,
                               object_size=(20, 40))
    again = make_detection_split(str(tmp_path / 'b'), 'val', 4, image_size=128, seed=3,
                                 object_size=(20, 40))
    coco = json.loads(open(ann).read())
    assert coco == json.loads(open(again).read())
    assert len(coco['images']) == 4 and len(coco['annotations']) == 8
    assert {c['name'] for c in coco['categories']} == set(SHAPE_CLASSES)
    for ann_ in coco['annotations']:
        x, y, w, h = ann_['bbox']
        assert 0 <= x and 0 <= y and x + w <= 128 and y + h <= 128
    image = cv2.imread(osp.join(str(tmp_path / 'a'), 'val', coco['images'][0]['file_name']))
    assert image.shape == (128, 128, 3)


def test_object_pixels_differ_from_background(tmp_path):
    ann = make_detection_split(str(tmp_path), 'val', 1, image_size=128, seed=0,
                               object_size=(30, 40))
    coco = json.loads(open(ann).read())
    image = cv2.imread(osp.join(str(tmp_path), 'val', coco['images'][0]['file_name'])).astype(int)
    x, y, w, h = coco['annotations'][0]['bbox']
    centre = image[y + h // 2 + 3, x + w // 2]
    assert centre.max() - centre.min() > 80  # saturated class colour, not grey


def test_classification_split_keeps_a_box_beside_each_image(tmp_path):
    ann_file = make_classification_split(str(tmp_path), 'train', 6, image_size=96, seed=1,
                                         object_size=(20, 30))
    root = osp.join(str(tmp_path), 'train')
    lines = open(ann_file).read().splitlines()
    assert lines[0] == 'red_square/00000.png 0' and lines[2] == 'blue_triangle/00002.png 2'
    for index in range(6):
        name = list(SHAPE_CLASSES)[index % 3]
        info = json.loads(open(osp.join(root, name, f'{index:05d}.json')).read())
        assert info['class_name'] == name and len(info['bbox']) == 4
        assert osp.exists(osp.join(root, name, f'{index:05d}.png'))


def test_outline_polygons_are_the_drawn_objects(tmp_path):
    """Each annotation's polygon, rasterised as COCO tools do (MMDetection's
    LoadAnnotations), covers the object's coloured pixels and nothing else."""
    from pycocotools import mask as coco_mask
    ann = make_detection_split(str(tmp_path), 'val', 6, image_size=128, seed=5,
                               object_size=(24, 48))
    coco = json.loads(open(ann).read())
    names = {c['id']: c['name'] for c in coco['categories']}
    shapes = set()
    for ann_ in coco['annotations']:
        image = cv2.imread(osp.join(str(tmp_path), 'val',
                                    coco['images'][ann_['image_id']]['file_name'])).astype(int)
        rle = coco_mask.frPyObjects(ann_['segmentation'], 128, 128)
        mask = coco_mask.decode(coco_mask.merge(rle)).astype(bool)
        x, y, w, h = ann_['bbox']
        box = tuple(slice(a, a + b) for a, b in ((y, h), (x, w)))
        assert mask.sum() == mask[box].sum() > 0  # inside its box
        colourful = (image.max(axis=2) - image.min(axis=2) > 60)[box]  # the object, not grey
        inside = mask[box]
        iou = (colourful & inside).sum() / (colourful | inside).sum()
        assert iou > 0.9, (names[ann_['category_id']], iou)
        assert abs(ann_['area'] - inside.sum()) <= 0.1 * inside.sum()
        shapes.add(names[ann_['category_id']])
    assert shapes == set(SHAPE_CLASSES)
