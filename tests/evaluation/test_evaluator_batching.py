"""Quality metrics do not depend on batching: batch size 1 and 4 on mixed-size images agree."""
import json
import os.path as osp
from typing import Dict, Sequence, Tuple

import cv2
import pytest
from mmengine.config import Config
from mmengine.runner import Runner, load_checkpoint

from mmxai.apis import set_data_root
from mmxai.datasets import make_classification_split, make_detection_split
from mmxai.evaluation import ExplanationEvaluator

ALGORITHMS = ('classwisesaliencymap', 'activationmap')
# (height, width) per image; None keeps the generated 256 x 256. Detection: the demo
# pipeline's Resize keeps the ratio within 256 x 256 (the 128 x 192 image is enlarged
# to 171 x 256) and the preprocessor pads to multiples of 32 (180 -> 192, 171 -> 192,
# 200 -> 224), so a batch of 4 mixes three padded shapes, one of them shared by two
# image sizes (each with its own region and blur kernel). Classification: no resize.
DET_SIZES = (None, (180, 256), (256, 200), (128, 192), None)
CLS_SIZES = ((200, 256), None, (256, 180), (224, 224), (200, 256))


def _resize(path: str, size: Tuple[int, int]) -> Tuple[float, float]:
    """Resize the image file to (height, width); returns the (x, y) scale."""
    image = cv2.imread(path)
    height, width = size
    cv2.imwrite(path, cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))
    return width / image.shape[1], height / image.shape[0]


def _mixed_size_detection_set(root: str) -> None:
    ann_file = make_detection_split(root, 'val', len(DET_SIZES), seed=11)
    with open(ann_file) as file:
        coco = json.load(file)
    for image, size in zip(coco['images'], DET_SIZES):
        if size is None:
            continue
        sx, sy = _resize(osp.join(root, 'val', image['file_name']), size)
        image['height'], image['width'] = size
        for ann in coco['annotations']:
            if ann['image_id'] != image['id']:
                continue
            x, y, w, h = ann['bbox']
            ann['bbox'] = [x * sx, y * sy, w * sx, h * sy]
            ann['area'] = ann['area'] * sx * sy
            ann['segmentation'] = [[v * (sx if i % 2 == 0 else sy) for i, v in enumerate(poly)]
                                   for poly in ann['segmentation']]
    with open(ann_file, 'w') as file:
        json.dump(coco, file)


def _mixed_size_classification_set(root: str) -> None:
    ann_file = make_classification_split(root, 'val', len(CLS_SIZES), seed=12)
    with open(ann_file) as file:
        images = [line.split()[0] for line in file]
    for name, size in zip(images, CLS_SIZES):
        if size is None:
            continue
        path = osp.join(root, 'val', name)
        sx, sy = _resize(path, size)
        box_file = osp.splitext(path)[0] + '.json'
        with open(box_file) as file:
            record = json.load(file)
        x1, y1, x2, y2 = record['bbox']
        record['bbox'] = [x1 * sx, y1 * sy, x2 * sx, y2 * sy]
        with open(box_file, 'w') as file:
            json.dump(record, file)


def _summaries(config: str, checkpoint: str, data_root: str, work_dir: str,
               batch_sizes: Sequence[int]) -> Dict[int, dict]:
    cfg = set_data_root(Config.fromfile(config), data_root)
    cfg.work_dir = work_dir
    runner = Runner.from_cfg(cfg)
    load_checkpoint(runner.model, checkpoint, map_location='cpu', strict=True)
    summaries = {}
    for batch_size in batch_sizes:
        loader_cfg = cfg.test_dataloader.copy()
        loader_cfg.batch_size = batch_size
        evaluator = ExplanationEvaluator(runner.model.eval(), ALGORITHMS, steps=4,
                                         insertion_canvas='blur')
        for data in runner.build_dataloader(loader_cfg):
            evaluator.process(data)
        summaries[batch_size] = evaluator.summary()
    return summaries


def _assert_same(summaries: Dict[int, dict]) -> None:
    one, four = summaries[1], summaries[4]
    assert set(one) == set(four) == {*ALGORITHMS, 'random', 'centre_blob'}
    for method, values in one.items():
        assert set(values) == set(four[method]), method
        for metric, value in values.items():
            assert four[method][metric] == pytest.approx(value, abs=1e-5), (method, metric)


def test_detection_metrics_do_not_depend_on_batch_size(trained_detector, tmp_path):
    root = str(tmp_path / 'data')
    _mixed_size_detection_set(root)
    _assert_same(_summaries(*trained_detector, root, str(tmp_path / 'work'), (1, 4)))


def test_classification_metrics_do_not_depend_on_batch_size(trained_classifier, tmp_path):
    root = str(tmp_path / 'data')
    _mixed_size_classification_set(root)
    _assert_same(_summaries(*trained_classifier, root, str(tmp_path / 'work'), (1, 4)))
