"""A deterministic synthetic "shapes" data set for demos and tests.

Objects of a few classes (each class its own shape and colour) on textured
backgrounds, with boxes: COCO format for detection, MMPretrain's folder format
for classification with each image's object box in a JSON file beside it.
Detection annotations also hold each object's outline as a COCO polygon, so
the same data trains instance segmentation models (Mask R-CNN). Multi-label
classification images hold two objects of distinct classes, each label's box
in the JSON beside the image.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

#: Class name -> (shape, BGR colour).
SHAPE_CLASSES: Dict[str, Tuple[str, Tuple[int, int, int]]] = {
    'red_square': ('square', (40, 40, 220)),
    'green_circle': ('circle', (60, 200, 60)),
    'blue_triangle': ('triangle', (220, 90, 30)),
}


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Grey low-frequency blobs plus pixel noise, uint8 BGR (size, size, 3)."""
    coarse = rng.uniform(70, 170, size=(6, 6, 1)).astype(np.float32)
    image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)[..., None]
    image = np.repeat(image, 3, axis=2) + rng.normal(0, 12, size=(size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def object_outline(class_name: str, box: Sequence[int]) -> np.ndarray:
    """The outline of an object of ``class_name`` filling ``box``: (N, 2) int32 points.

    Points are pixel centres, as :func:`cv2.fillPoly` takes them. A circle's
    outline is a 32-gon, within a fifth of a pixel of the circle
    :func:`draw_object` draws.
    """
    shape = SHAPE_CLASSES[class_name][0]
    x1, y1, x2, y2 = (int(v) for v in box)
    if shape == 'square':
        points = [[x1, y1], [x2 - 1, y1], [x2 - 1, y2 - 1], [x1, y2 - 1]]
    elif shape == 'circle':
        angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        radius = (x2 - x1) // 2
        points = np.stack([(x1 + x2) // 2 + radius * np.cos(angles),
                           (y1 + y2) // 2 + radius * np.sin(angles)], axis=1).round()
    else:
        points = [[(x1 + x2) // 2, y1], [x1, y2 - 1], [x2 - 1, y2 - 1]]
    return np.asarray(points, np.int32)


def coco_polygon(outline: np.ndarray) -> np.ndarray:
    """A convex pixel-centre outline as COCO's polygon: (N, 2) float points.

    COCO tools (and MMDetection's ``LoadAnnotations``) read coordinates as
    pixel corners, so the outline moves by half a pixel and each edge moves
    out by half a pixel: the rasterised polygon then covers the pixels that
    :func:`cv2.fillPoly` fills with ``outline``, its edge pixels included.
    """
    points = outline.astype(np.float64) + 0.5
    turns = np.cross(points - np.roll(points, 1, axis=0), np.roll(points, -1, axis=0) - points)
    points = points[turns != 0]  # corners only: no repeated or straight-through points
    edges = np.roll(points, -1, axis=0) - points
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    normals *= np.sign(((points - points.mean(0)) * normals).sum(1, keepdims=True))  # outward
    offsets = (normals * points).sum(1) + 0.5  # edge i: normals[i] . x = offsets[i]
    previous = np.roll(np.arange(len(points)), 1)
    corners = [np.linalg.solve(np.stack([normals[j], normals[i]]), [offsets[j], offsets[i]])
               for i, j in enumerate(previous)]  # vertex i joins edges i-1 and i
    return np.asarray(corners)


def draw_object(image: np.ndarray, rng: np.random.Generator, class_name: str,
                box: Sequence[int]) -> None:
    """Draw one object of ``class_name`` filling ``box`` (x1, y1, x2, y2)."""
    shape, colour = SHAPE_CLASSES[class_name]
    jitter = rng.integers(-25, 26, size=3)
    colour = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(colour, jitter))
    if shape == 'circle':
        x1, y1, x2, y2 = (int(v) for v in box)
        cv2.circle(image, ((x1 + x2) // 2, (y1 + y2) // 2), (x2 - x1) // 2, colour,
                   thickness=-1)
    else:
        cv2.fillPoly(image, [object_outline(class_name, box)], colour)


def _place(rng: np.random.Generator, size: int, taken: List[Tuple[int, ...]],
           min_side: int, max_side: int) -> Tuple[int, int, int, int]:
    for _ in range(100):
        side = int(rng.integers(min_side, max_side + 1))
        x1, y1 = (int(v) for v in rng.integers(0, size - side, size=2))
        box = (x1, y1, x1 + side, y1 + side)
        if all(box[2] <= t[0] or t[2] <= box[0] or box[3] <= t[1] or t[3] <= box[1]
               for t in taken):
            return box
    raise RuntimeError('could not place an object without overlap; use larger images')


def scene(rng: np.random.Generator, size: int, class_names: Sequence[str],
          min_side: int, max_side: int) -> Tuple[np.ndarray, List[Tuple[int, ...]]]:
    """An image holding one non-overlapping object per entry of ``class_names``."""
    image = textured_background(rng, size)
    boxes: List[Tuple[int, ...]] = []
    for name in class_names:
        boxes.append(_place(rng, size, boxes, min_side, max_side))
        draw_object(image, rng, name, boxes[-1])
    return image, boxes


def make_detection_split(root: str, split: str, num_images: int, image_size: int = 256,
                         objects_per_image: int = 2, seed: int = 0,
                         object_size: Tuple[int, int] = (40, 90)) -> str:
    """Write ``root/<split>/*.png`` and ``root/<split>.json`` (COCO).

    Each image holds ``objects_per_image`` objects of distinct classes; each
    annotation has its box and its outline as a polygon (``segmentation``).

    Returns:
        str: Path of the annotation file.
    """
    rng = np.random.default_rng(seed)
    names = list(SHAPE_CLASSES)
    os.makedirs(osp.join(root, split), exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        chosen = [names[i] for i in rng.permutation(len(names))[:objects_per_image]]
        image, boxes = scene(rng, image_size, chosen, *object_size)
        file_name = f'{split}_{index:05d}.png'
        cv2.imwrite(osp.join(root, split, file_name), image)
        images.append(dict(id=index, file_name=file_name, width=image_size, height=image_size))
        for name, (x1, y1, x2, y2) in zip(chosen, boxes):
            # A sharp corner grown by half a pixel can leave the box: clip it back.
            polygon = np.clip(coco_polygon(object_outline(name, (x1, y1, x2, y2))),
                              (x1, y1), (x2, y2))
            area = float(cv2.contourArea(polygon.astype(np.float32)))
            # COCO annotation ids start at 1: pycocotools reads id 0 as "no match".
            annotations.append(dict(id=len(annotations) + 1, image_id=index, iscrowd=0,
                                    category_id=names.index(name) + 1, area=round(area, 2),
                                    bbox=[x1, y1, x2 - x1, y2 - y1],
                                    segmentation=[polygon.round(2).reshape(-1).tolist()]))
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(names)]
    ann_file = osp.join(root, f'{split}.json')
    with open(ann_file, 'w') as file:
        json.dump(dict(images=images, annotations=annotations, categories=categories), file)
    return ann_file


def make_classification_split(root: str, split: str, num_images: int, image_size: int = 256,
                              seed: int = 0, object_size: Tuple[int, int] = (64, 96)) -> str:
    """Write ``root/<split>/<class>/<n>.png``, ``<n>.json`` and ``root/<split>.txt``.

    ``<n>.json`` beside each image holds its label, class name and object box
    (x1, y1, x2, y2); ``<split>.txt`` is MMPretrain's annotation-file format
    (``<class>/<n>.png <label>`` per line), whose labels follow
    :data:`SHAPE_CLASSES`' order (the folder format would sort class names).

    Returns:
        str: Path of the annotation file.
    """
    rng = np.random.default_rng(seed)
    names = list(SHAPE_CLASSES)
    lines = []
    for index in range(num_images):
        name = names[index % len(names)]
        image, (box,) = scene(rng, image_size, [name], *object_size)
        folder = osp.join(root, split, name)
        os.makedirs(folder, exist_ok=True)
        cv2.imwrite(osp.join(folder, f'{index:05d}.png'), image)
        with open(osp.join(folder, f'{index:05d}.json'), 'w') as file:
            json.dump(dict(label=names.index(name), class_name=name, bbox=list(box)), file)
        lines.append(f'{name}/{index:05d}.png {names.index(name)}\n')
    ann_file = osp.join(root, f'{split}.txt')
    with open(ann_file, 'w') as file:
        file.writelines(lines)
    return ann_file


def make_multilabel_split(root: str, split: str, num_images: int, image_size: int = 256,
                          objects_per_image: int = 2, seed: int = 0,
                          object_size: Tuple[int, int] = (64, 96)) -> str:
    """Write ``root/<split>/<n>.png``, ``<n>.json`` and ``root/<split>.json``.

    Each image holds ``objects_per_image`` objects of distinct classes, so
    that each of its labels has its own object. ``<n>.json`` beside each
    image holds its ``labels``, ``class_names`` and one ``bboxes`` entry
    (x1, y1, x2, y2) per label; ``<split>.json`` is MMPretrain's
    ``MultiLabelDataset`` annotation file (``metainfo.classes`` in
    :data:`SHAPE_CLASSES`' order, ``data_list`` of ``img_path`` and
    ``gt_label`` lists).

    Returns:
        str: Path of the annotation file.
    """
    rng = np.random.default_rng(seed)
    names = list(SHAPE_CLASSES)
    os.makedirs(osp.join(root, split), exist_ok=True)
    data_list = []
    for index in range(num_images):
        chosen = [names[i] for i in rng.permutation(len(names))[:objects_per_image]]
        image, boxes = scene(rng, image_size, chosen, *object_size)
        labels = sorted(names.index(name) for name in chosen)
        by_label = {names.index(name): list(box) for name, box in zip(chosen, boxes)}
        stem = osp.join(root, split, f'{index:05d}')
        cv2.imwrite(stem + '.png', image)
        with open(stem + '.json', 'w') as file:
            json.dump(dict(labels=labels, class_names=[names[i] for i in labels],
                           bboxes=[by_label[i] for i in labels]), file)
        data_list.append(dict(img_path=f'{split}/{index:05d}.png', gt_label=labels))
    ann_file = osp.join(root, f'{split}.json')
    with open(ann_file, 'w') as file:
        json.dump(dict(metainfo=dict(classes=names), data_list=data_list), file)
    return ann_file
