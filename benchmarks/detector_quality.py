"""Class and per-box maps of a small DINO and a small Faster R-CNN against the demo ATSS.

The models (``configs/demo/atss_tiny_shapes.py``, ``dino_tiny_shapes.py``
for issue 23, ``faster_rcnn_tiny_shapes.py`` for issue 22) are trained here
on the same synthetic shapes data with the same seed, then explained on the
held-out images with
``classwisesaliencymap``. Printed and written as JSON: the detectors' mAP, the
class maps' pointing game (:class:`mmxai.evaluation.ExplanationEvaluator`),
and for DINO the share of detections scoring at least 0.3 whose per-box map
peaks inside their own box::

    python benchmarks/detector_quality.py [--seed 0] [--val-images 30] \
        [--models atss dino faster_rcnn] [--dino-iters N] [--output work_dirs/detector_quality]

Trained checkpoints are reused when their work dir holds one (delete it to
train again). Goals: DINO's and Faster R-CNN's pointing game at least
ATSS's; DINO's per-box maps peak inside their box for at least 90 % of
detections above 0.3.
"""
import argparse
import json
import os
import os.path as osp
import time
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from mmxai.apis import process_batches, set_data_root
from mmxai.checkpoint import register_safe_loaders
from mmxai.datasets import make_detection_split
from mmxai.engine import QuietRunner
from mmxai.evaluation import ExplanationEvaluator, peak_points
from mmxai.models import ExplainModel, maps_on_original_image, peak_region_on_original_image

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODELS = {'atss': ('ATSS (demo)', 'configs/demo/atss_tiny_shapes.py'),
          'dino': ('DINO (small)', 'configs/demo/dino_tiny_shapes.py'),
          'faster_rcnn': ('Faster R-CNN (small)', 'configs/demo/faster_rcnn_tiny_shapes.py')}
BOX_SCORE = 0.3


def trained(config: str, data_root: str, work_dir: str, seed: int,
            max_iters: Optional[int]) -> tuple:
    """The runner of ``config`` with its trained weights (trained now unless already saved)."""
    cfg = set_data_root(Config.fromfile(osp.join(REPO, config)), data_root)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed, deterministic=True)
    if max_iters:
        cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = max_iters
        cfg.default_hooks.checkpoint.interval = max_iters
    runner = QuietRunner.from_cfg(cfg)
    checkpoint = osp.join(work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')
    seconds = None
    if not osp.exists(checkpoint):
        start = time.perf_counter()
        runner.train()
        seconds = round(time.perf_counter() - start, 1)
    load_checkpoint(runner.model, checkpoint, map_location='cpu', strict=True)
    return runner, cfg, seconds


def box_maps_inside(model: torch.nn.Module, runner: QuietRunner, cfg: Config) -> dict:
    """How many detections scoring >= BOX_SCORE have a per-box map peaking in their own box."""
    explain = ExplainModel(model, score_thr=BOX_SCORE, box_targets=['predictions'])
    counts = dict(boxes=0, inside=0)

    def process(data: dict) -> None:
        with torch.no_grad():
            samples = explain.test_step(data)
        for sample in samples:
            maps = maps_on_original_image(sample.box_saliency_map, sample.metainfo)
            region = peak_region_on_original_image(sample.box_saliency_map, sample.metainfo)
            boxes = sample.pred_instances.bboxes[sample.pred_instances.scores >= BOX_SCORE]
            peaks = peak_points(maps, region).tolist()
            for (x, y), (x1, y1, x2, y2) in zip(peaks, boxes.tolist()):
                counts['boxes'] += 1
                counts['inside'] += int(x1 - 1 <= x <= x2 + 1 and y1 - 1 <= y <= y2 + 1)

    process_batches(runner.build_dataloader(cfg.test_dataloader), process, 'per-box maps')
    counts['share'] = round(counts['inside'] / max(counts['boxes'], 1), 3)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--train-images', type=int, default=200)
    parser.add_argument('--val-images', type=int, default=30)
    parser.add_argument('--models', nargs='+', choices=list(MODELS), default=list(MODELS))
    parser.add_argument('--dino-iters', type=int, default=None,
                        help='training iterations of DINO (default: its config\'s)')
    parser.add_argument('--output', default='work_dirs/detector_quality')
    args = parser.parse_args()
    register_safe_loaders()
    data_root = osp.join(args.output, 'data') + '/'
    if not osp.exists(osp.join(data_root, 'val.json')):
        make_detection_split(data_root, 'train', args.train_images, seed=1)
        make_detection_split(data_root, 'val', args.val_images, seed=2)
    results = {}
    for name, config in (MODELS[key] for key in args.models):
        work_dir = osp.join(args.output, f'{osp.basename(config)[:-3]}_seed{args.seed}')
        runner, cfg, seconds = trained(config, data_root, work_dir, args.seed,
                                       args.dino_iters if 'dino' in config else None)
        model = runner.model.eval()
        metrics = runner.test()
        # Few insertion/deletion steps: the pointing game is the measure here.
        evaluator = ExplanationEvaluator(model, ['classwisesaliencymap'], steps=4)
        process_batches(runner.build_dataloader(cfg.test_dataloader), evaluator.process,
                        'evaluated')
        results[name] = dict(
            training_s=seconds, bbox_mAP_50=round(metrics.get('coco/bbox_mAP_50', -1), 3),
            pointing_game=evaluator.summary()['classwisesaliencymap']['pointing_game'],
            per_box=box_maps_inside(model, runner, cfg))
        print(f'{name}: {results[name]}', flush=True)
        os.makedirs(args.output, exist_ok=True)
        with open(osp.join(args.output, 'results.json'), 'w') as file:
            json.dump(dict(seed=args.seed, val_images=args.val_images, results=results),
                      file, indent=1)
    print('| model | mAP@0.5 | pointing game | per-box peak in its box (>= 0.3) |')
    print('|---|---|---|---|')
    for name, result in results.items():
        box = result['per_box']
        print(f"| {name} | {result['bbox_mAP_50']:.3f} | {result['pointing_game']:.3f} | "
              f"{box['share']:.3f} ({box['inside']}/{box['boxes']}) |")


if __name__ == '__main__':
    main()
