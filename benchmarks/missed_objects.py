"""What the class map says about the objects a detector missed.

Explains every ground-truth object of an annotated test set (``--explain-gt``
of ``tools/explain.py``) at raised score thresholds, so that the detector
misses some, and compares the class map inside the missed objects' boxes
(``in_box``: the largest class probability of the object's class inside its
box) and their per-box maps (``evidence``: the largest probability among the
anchors that regress to the box) with those of the detected objects.

    python benchmarks/missed_objects.py [CONFIG CHECKPOINT] [--score-thr 0.3 0.5 0.7]
        [--demo-config configs/demo/faster_rcnn_tiny_shapes.py] [--json results.json]

Without CONFIG and CHECKPOINT it trains a demo detector on generated shapes
(the demo ATSS unless ``--demo-config`` names another; as the tests do,
``MMXAI_TEST_MODEL_CACHE`` reuses a trained one) and explains 60 held-out
images. Issue 16's goal: the map inside a missed
object's box separates "the model saw it weakly" from "did not see it".
"""
import argparse
import json
import os.path as osp
import sys
import tempfile
from typing import Dict, List

import cv2
import numpy as np
from mmengine.config import Config
from mmengine.runner import Runner

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from mmxai.apis import explain_config, set_data_root  # noqa: E402
from mmxai.datasets import make_detection_split  # noqa: E402

#: Evidence from which a missed object counts as seen (weakly): a tenth of
#: MMDetection's usual display threshold would still be a visible detection.
SEEN = 0.1


def demo_model(work_dir: str, config: str) -> tuple:
    """Train (or take from the test model cache) a demo detector; returns config, checkpoint."""
    from tests.conftest import _train_demo_model
    make_detection_split(work_dir, 'train', 160, seed=1)
    make_detection_split(work_dir, 'val', 60, seed=5)
    return _train_demo_model(config, work_dir, work_dir)


def fade_objects(data_root: str, fades: List[float]) -> Dict[int, float]:
    """Fade the val objects toward their surroundings, the k-th one by ``fades[k % n]``.

    Each object's outline is blended with the image inpainted without it
    (OpenCV's Telea inpainting; fade 1: gone).

    Returns:
        dict: (file name, index of the object in its image) -> fade.
    """
    with open(osp.join(data_root, 'val.json')) as file:
        coco = json.load(file)
    names = {image['id']: image['file_name'] for image in coco['images']}
    faded: Dict[tuple, float] = {}
    seen: Dict[int, int] = {}
    for k, ann in enumerate(coco['annotations']):
        path = osp.join(data_root, 'val', names[ann['image_id']])
        image = cv2.imread(path).astype(np.float32)
        x, y, w, h = (int(v) for v in ann['bbox'])
        mask = np.zeros(image.shape[:2], np.uint8)
        polygon = np.array(ann['segmentation'][0], np.float32).reshape(-1, 2)
        cv2.fillPoly(mask, [polygon.round().astype(np.int32)], 255)
        mask = cv2.dilate(mask, np.ones((5, 5), np.uint8))
        removed = cv2.inpaint(image.round().astype(np.uint8), mask, 7,
                              cv2.INPAINT_TELEA).astype(np.float32)
        fade = fades[k % len(fades)]
        inside = mask.astype(bool)
        image[inside] = (1 - fade) * image[inside] + fade * removed[inside]
        cv2.imwrite(path, image.round().clip(0, 255).astype(np.uint8))
        index = seen[ann['image_id']] = seen.get(ann['image_id'], -1) + 1
        faded[names[ann['image_id']], index] = fade
    return faded


def explain_ground_truth(config: str, checkpoint: str, score_thr: float, out: str) -> List[dict]:
    """Box records of every annotated object at one threshold."""
    cfg = explain_config(Config.fromfile(config), checkpoint, out,
                         explain=dict(score_thr=score_thr, box_targets=['ground_truth']))
    cfg.work_dir = osp.join(out, 'logs')
    cfg.log_level = 'WARNING'
    Runner.from_cfg(cfg).test()
    with open(osp.join(out, 'manifest.json')) as file:
        return [dict(box, file=osp.basename(entry['image']))
                for entry in json.load(file)['images'] for box in entry['boxes']]


def summary(values: List[float]) -> Dict[str, float]:
    """Count and quantiles of a list of numbers."""
    if not values:
        return dict(count=0)
    q = np.quantile(values, [0.1, 0.25, 0.5, 0.75, 0.9])
    return dict(count=len(values), p10=q[0], p25=q[1], median=q[2], p75=q[3], p90=q[4])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?')
    parser.add_argument('checkpoint', nargs='?')
    parser.add_argument('--data-root', help="the config's data root, if not its own")
    parser.add_argument('--score-thr', type=float, nargs='+', default=[0.3, 0.5, 0.7])
    parser.add_argument('--fade', type=float, nargs='*', default=[0.0, 0.6, 0.8, 0.9, 1.0],
                        help='demo data: fade the k-th object toward its surroundings by '
                        'fade[k %% n] (1: removed), so that the detector misses some')
    parser.add_argument('--demo-config', default=osp.join(REPO, 'configs/demo/atss_tiny_shapes.py'),
                        help='without CONFIG: the demo config to train')
    parser.add_argument('--json', help='write the results here')
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as work:
        config, checkpoint = args.config, args.checkpoint
        fades = None
        if config is None:
            config, checkpoint = demo_model(work, args.demo_config)
            fades = fade_objects(work, args.fade) if args.fade else None
        elif args.data_root:
            rooted = set_data_root(Config.fromfile(config), args.data_root)
            config = osp.join(work, 'cfg.py')
            rooted.dump(config)
        for thr in args.score_thr:
            records = explain_ground_truth(config, checkpoint, thr, osp.join(work, f'thr{thr}'))
            row = dict(score_thr=thr, objects=len(records))
            for name, found in (('detected', True), ('missed', False)):
                group = [r for r in records if r['detected'] == found]
                row[name] = dict(in_box=summary([r['in_box'] for r in group]),
                                 evidence=summary([r['evidence'] for r in group]),
                                 no_prediction=sum(r['match'] is None for r in group))
            missed = [r for r in records if not r['detected']]
            row['missed_seen_weakly'] = sum(r['evidence'] >= SEEN for r in missed)
            row['missed_not_seen'] = len(missed) - row['missed_seen_weakly']
            if fades:
                row['by_fade'] = {}
                for fade in sorted(set(fades.values())):
                    group = [r for r in records if fades[r['file'], r['index']] == fade]
                    row['by_fade'][fade] = dict(
                        objects=len(group), missed=sum(not r['detected'] for r in group),
                        evidence=summary([r['evidence'] for r in group]),
                        in_box=summary([r['in_box'] for r in group]))
            results.append(row)
    print(f'evidence: the highest class probability of an anchor regressing to the object; '
          f'seen weakly: evidence >= {SEEN}')
    print(f"{'thr':>5} {'objects':>7} {'missed':>6} | evidence p10/median/p90: detected | "
          f"missed | missed: seen weakly / not seen")
    for row in results:
        cells = []
        for name in ('detected', 'missed'):
            q = row[name]['evidence']
            cells.append('/'.join(f"{q[k]:.2f}" for k in ('p10', 'median', 'p90'))
                         if q['count'] else '-')
        missed = row['missed']['evidence']['count']
        print(f"{row['score_thr']:>5.2f} {row['objects']:>7d} {missed:>6d}"
              f" | {cells[0]:>32} | {cells[1]:>14} | "
              f"{row['missed_seen_weakly']} / {row['missed_not_seen']}")
    for row in results:
        for fade, group in row.get('by_fade', {}).items():
            q = group['evidence']
            print(f"thr {row['score_thr']:.2f} fade {fade:.2f}: {group['missed']:>3d} of "
                  f"{group['objects']} missed, evidence p10/median/p90 "
                  f"{q['p10']:.2f}/{q['median']:.2f}/{q['p90']:.2f}, in_box median "
                  f"{group['in_box']['median']:.3f}")
    if args.json:
        with open(args.json, 'w') as file:
            json.dump(results, file, indent=2, default=float)


if __name__ == '__main__':
    main()
