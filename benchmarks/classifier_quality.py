"""Recipro-CAM on a small ConvNeXt against the demo ResNet (issue 21), same data, same schedule.

ConvNeXt pools inside its backbone before its final norm; mmxai reads the map
of its last stage and scores Recipro-CAM's mosaics through that norm (with
the statistics of the image's own pooled vector) and the head. Both models
(``configs/demo/resnet_tiny_shapes.py`` and
``configs/demo/convnext_tiny_shapes.py``) are trained here on the synthetic
shapes data with each seed, then explained on the held-out images; the
pointing game (and accuracy) of each is printed and written as JSON::

    python benchmarks/classifier_quality.py [--seeds 0 1] [--val-images 60] \
        [--output work_dirs/classifier_quality]

Goal (issue 21): ConvNeXt's pointing game at least the ResNet's.
"""
import argparse
import json
import os
import os.path as osp
import time
from typing import Tuple

from mmengine.config import Config
from mmengine.runner import load_checkpoint

from mmxai.apis import process_batches, set_data_root
from mmxai.checkpoint import register_safe_loaders
from mmxai.datasets import make_classification_split
from mmxai.engine import QuietRunner
from mmxai.evaluation import ExplanationEvaluator

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODELS = {'ResNet-18 (demo)': 'configs/demo/resnet_tiny_shapes.py',
          'ConvNeXt (small)': 'configs/demo/convnext_tiny_shapes.py'}


def train_seeded(config: str, data_root: str, work_dir: str,
                 seed: int) -> Tuple[QuietRunner, Config, float]:
    """Train a config of this repository on ``data_root`` with ``seed``, deterministically.

    Returns:
        tuple: The runner (its model loaded with the final checkpoint), the
        config and the training time in seconds.
    """
    cfg = set_data_root(Config.fromfile(osp.join(REPO, config)), data_root)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed, deterministic=True)
    runner = QuietRunner.from_cfg(cfg)
    start = time.perf_counter()
    runner.train()
    seconds = time.perf_counter() - start
    checkpoint = osp.join(work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')
    load_checkpoint(runner.model, checkpoint, map_location='cpu', strict=True)
    return runner, cfg, seconds


def train_and_evaluate(config: str, data_root: str, work_dir: str, seed: int) -> dict:
    """Train ``config`` with ``seed``, then its accuracy and Recipro-CAM's pointing game."""
    runner, cfg, seconds = train_seeded(config, data_root, work_dir, seed)
    accuracy = runner.message_hub.log_scalars['val/accuracy/top1'].current()
    evaluator = ExplanationEvaluator(runner.model.eval(), ['classwisesaliencymap'])
    process_batches(runner.build_dataloader(cfg.test_dataloader), evaluator.process,
                    'evaluated')
    summary = evaluator.summary()
    return dict(accuracy=accuracy, training_s=round(seconds, 1),
                pointing_game=summary['classwisesaliencymap']['pointing_game'])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--train-images', type=int, default=160)
    parser.add_argument('--val-images', type=int, default=60)
    parser.add_argument('--output', default='work_dirs/classifier_quality')
    args = parser.parse_args()
    register_safe_loaders()
    data_root = osp.join(args.output, 'data') + '/'
    if not osp.exists(osp.join(data_root, 'val.txt')):
        make_classification_split(data_root, 'train', args.train_images, seed=1)
        make_classification_split(data_root, 'val', args.val_images, seed=2)
    results = {name: {} for name in MODELS}
    for seed in args.seeds:
        for name, config in MODELS.items():
            work_dir = osp.join(args.output, f'{osp.basename(config)[:-3]}_seed{seed}')
            results[name][seed] = train_and_evaluate(config, data_root, work_dir, seed)
            print(f'seed {seed} {name}: {results[name][seed]}', flush=True)
            os.makedirs(args.output, exist_ok=True)
            with open(osp.join(args.output, 'results.json'), 'w') as file:
                json.dump(dict(val_images=args.val_images, results=results), file, indent=1)
    print('| model | ' + ' | '.join(f'seed {s} pointing game (accuracy)' for s in args.seeds)
          + ' |')
    print('|---|' + '---|' * len(args.seeds))
    for name, by_seed in results.items():
        print(f'| {name} | ' + ' | '.join(
            f"{by_seed[s]['pointing_game']:.3f} ({by_seed[s]['accuracy']:.1f} %)"
            for s in args.seeds) + ' |')


if __name__ == '__main__':
    main()
